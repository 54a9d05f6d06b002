/**
 * The cluster's certificates: a CA and the certificates it signs, ECDSA P-256
 * through @peculiar/x509 on Node's WebCrypto. `muster cert` and `muster up`
 * (the local launcher) write them; heads, agents, clients, NATS, etcd and the
 * gateway read them. The identity a certificate carries is encoded as
 * @muster/contracts identity.ts says (role in O, name in CN, call rights as
 * URI SANs).
 *
 * A PKI directory (PKI_FILES; keys 0600, the directory 0700):
 *   ca.crt ca.key                 the cluster CA
 *   head.crt head.key             role head, SANs = the heads' dial addresses
 *   admin.crt admin.key           role admin, every call right
 *   nodes/<id>.crt nodes/<id>.key role node, CN = the node id
 *   nats.crt nats.key             NATS' server certificate
 *   gateway.crt gateway.key       the gateway's HTTPS certificate
 *   etcd-ca.crt etcd-ca.key       a second CA, for etcd only: no node or client
 *                                 certificate of the cluster CA can reach etcd
 *   etcd-server.crt/.key          etcd's server certificate
 *   etcd-client.crt/.key          the heads' etcd client certificate
 *
 * Not in the package index: only the CLI and the launcher load it (the SDK
 * never creates certificates).
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { mkdir, readFile, writeFile, chmod, access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isIP } from 'node:net';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { ALL_GROUPS, callRightUri, roleOrganization, type Role } from '@muster/contracts';

x509.cryptoProvider.set(webcrypto as never);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** A certificate and its private key, both PEM. */
export interface CertPair {
  cert: string;
  key: string;
}

export interface CertRequest {
  role: Role;
  /** Subject CN: the node id for a node. */
  name: string;
  /** DNS names and IP addresses the holder serves at (server certificates). */
  hosts?: readonly string[];
  /** Groups the holder may call (URI SANs); 'all' for every group. */
  callGroups?: readonly string[] | 'all';
  /** Validity in days (default 365). */
  days?: number;
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  // Back-dated a minute: a peer whose clock is slightly behind accepts it at once.
  const now = Date.now() - 60_000;
  return { notBefore: new Date(now), notAfter: new Date(now + days * DAY_MS) };
}

function serial(): string {
  // Positive, 16 bytes: the top bit cleared.
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
}

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
}

/** Quotes a relative distinguished name value (RFC 4514) so a name with ',' or '=' stays one value. */
function rdn(v: string): string {
  return v.replace(/([,+"\\<>;=#])/g, '\\$1');
}

/** A new self-signed CA (path length 0: it signs leaves only). */
export async function createCa(commonName: string, days = 3650): Promise<CertPair> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${rdn(commonName)}`,
    ...validity(days),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

/** A leaf certificate signed by `ca`, usable as server and client (mutual TLS everywhere). */
export async function issueCert(ca: CertPair, req: CertRequest): Promise<CertPair> {
  if (!req.name) throw new Error('a certificate needs a name (CN)');
  const caCert = new x509.X509Certificate(ca.cert);
  const keys = await newKeys();
  const names: x509.JsonGeneralName[] = [];
  for (const h of req.hosts ?? []) names.push(isIP(h) ? { type: 'ip', value: h } : { type: 'dns', value: h });
  const groups = req.callGroups === 'all' ? [ALL_GROUPS] : (req.callGroups ?? []);
  for (const g of groups) names.push({ type: 'url', value: callRightUri(g) });
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${rdn(req.name)}, O=${rdn(roleOrganization(req.role))}`,
    issuer: caCert.subject,
    ...validity(req.days ?? 365),
    signingKey: await importKey(ca.key),
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

/** File names inside a PKI directory (without .crt/.key). */
export const PKI_FILES = {
  ca: 'ca',
  head: 'head',
  admin: 'admin',
  nats: 'nats',
  gateway: 'gateway',
  etcdCa: 'etcd-ca',
  etcdServer: 'etcd-server',
  etcdClient: 'etcd-client',
} as const;

/** Paths of one pair in `dir`; `node(id)` pairs live under nodes/. */
export function pairPaths(dir: string, name: string): { cert: string; key: string } {
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

export function nodePairName(nodeId: string): string {
  if (!/^[A-Za-z0-9._-]{1,253}$/.test(nodeId) || nodeId.startsWith('.')) throw new Error(`node id "${nodeId}" cannot name a certificate file (letters, digits, . _ - only)`);
  return join('nodes', nodeId);
}

export async function writePair(dir: string, name: string, pair: CertPair): Promise<void> {
  const p = pairPaths(dir, name);
  await mkdir(dirname(p.cert), { recursive: true, mode: 0o700 });
  await writeFile(p.cert, pair.cert, { mode: 0o644 });
  await writeFile(p.key, pair.key, { mode: 0o600 });
  await chmod(p.key, 0o600);
}

export async function readPair(dir: string, name: string): Promise<CertPair> {
  const p = pairPaths(dir, name);
  return { cert: await readFile(p.cert, 'utf8'), key: await readFile(p.key, 'utf8') };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/** Reads pair `name`, or issues it with `make` and writes it when absent. */
async function ensurePair(dir: string, name: string, make: () => Promise<CertPair>): Promise<CertPair> {
  if (await exists(pairPaths(dir, name).key)) return readPair(dir, name);
  const pair = await make();
  await writePair(dir, name, pair);
  return pair;
}

const LOOPBACK = ['localhost', '127.0.0.1', '::1'];

export interface ClusterPkiOptions {
  /** DNS names and IPs of the heads (and NATS, the gateway, etcd); default loopback, which NATS' and etcd's certificates always name. */
  hosts?: readonly string[];
  /** Node ids to issue node certificates for. */
  nodes?: readonly string[];
}

/**
 * Makes `dir` a complete PKI directory, keeping whatever is already there:
 * both CAs, head, admin, NATS, gateway, etcd server and client certificates,
 * and a node certificate per `nodes`. Idempotent; returns the directory.
 */
export async function ensureClusterPki(dir: string, opts: ClusterPkiOptions = {}): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const hosts = opts.hosts ?? LOOPBACK;
  // Loopback always for etcd and NATS: on a head machine the head dials them there (deploy/systemd).
  const local = [...new Set([...hosts, ...LOOPBACK])];
  const ca = await ensurePair(dir, PKI_FILES.ca, () => createCa('muster-ca'));
  await ensurePair(dir, PKI_FILES.head, () => issueCert(ca, { role: 'head', name: 'muster-head', hosts }));
  await ensurePair(dir, PKI_FILES.admin, () => issueCert(ca, { role: 'admin', name: 'admin', callGroups: 'all' }));
  await ensurePair(dir, PKI_FILES.nats, () => issueCert(ca, { role: 'service', name: 'nats', hosts: local }));
  await ensurePair(dir, PKI_FILES.gateway, () => issueCert(ca, { role: 'service', name: 'gateway', hosts }));
  const etcdCa = await ensurePair(dir, PKI_FILES.etcdCa, () => createCa('muster-etcd-ca'));
  await ensurePair(dir, PKI_FILES.etcdServer, () => issueCert(etcdCa, { role: 'service', name: 'etcd', hosts: local }));
  await ensurePair(dir, PKI_FILES.etcdClient, () => issueCert(etcdCa, { role: 'head', name: 'muster-head' }));
  for (const id of opts.nodes ?? []) await ensurePair(dir, nodePairName(id), () => issueCert(ca, { role: 'node', name: id }));
  return dir;
}

/** Issues (or keeps) node `nodeId`'s certificate in `dir`, signed by its CA. */
export async function ensureNodeCert(dir: string, nodeId: string): Promise<{ cert: string; key: string }> {
  const name = nodePairName(nodeId);
  await ensurePair(dir, name, async () => issueCert(await readPair(dir, PKI_FILES.ca), { role: 'node', name: nodeId }));
  return pairPaths(dir, name);
}
