/**
 * TLS for gRPC links and the identity a verified peer certificate carries.
 *
 * Every gRPC link is mutual TLS on the cluster CA (docs/security.md):
 * - a server (the head) presents a `head` certificate whose SANs name the
 *   address it is dialled at, and asks for a client certificate without
 *   requiring one (a bearer token is the other way in: the cluster token);
 * - a client checks the usual hostname match AND that the server's
 *   certificate has role `head`: a node's or the gateway's certificate, also
 *   signed by the CA, cannot pose as a head (leader hints included);
 * - `identityOf` turns the verified client certificate into an Identity.
 */
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { ChannelCredentials, experimental, type ServerCredentials } from '@grpc/grpc-js';
import { groupOfCallRightUri, roleOfOrganization, ALL_GROUPS, type Identity, type Role } from '@muster/contracts';
import { readKeyFile, readPemFile, type SecretFileOptions } from './secret-file.js';

/** Paths of a TLS identity: the CA that signs peers, and this side's certificate and key. */
export interface TlsFiles {
  ca: string;
  cert?: string;
  key?: string;
}

/**
 * A head's server credentials: its certificate, and the CA its clients'
 * certificates must chain to. A client certificate is asked for but not
 * required (a bearer token is the other way in); one that does not verify
 * gives no identity (grpc-js hands a handler the peer certificate only when
 * the TLS socket is authorized), so it authenticates nothing.
 */
export function grpcServerCredentials(files: Required<TlsFiles>, secret: SecretFileOptions = {}): ServerCredentials {
  const ca = readPemFile(files.ca, 'TLS CA file');
  const identity = { certificate: readPemFile(files.cert, 'TLS certificate file'), privateKey: readKeyFile(files.key, 'TLS key file', secret) };
  // Plain createSsl() either requires a client certificate or never asks for
  // one; a provider-based credential asks without requiring. The provider
  // answers on the next tick: grpc-js registers the server as a watcher only
  // after adding the listener, and would miss a synchronous first update.
  const provider: experimental.CertificateProvider = {
    addCaCertificateListener: (l) => setImmediate(() => l({ caCertificate: ca })),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l) => setImmediate(() => l(identity)),
    removeIdentityCertificateListener: () => {},
  };
  return experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

/** Channel credentials that trust only the cluster CA and only servers with role `head`. */
export function grpcChannelCredentials(files: TlsFiles, secret: SecretFileOptions = {}): ChannelCredentials {
  const ca = readPemFile(files.ca, 'TLS CA file');
  const key = files.key ? readKeyFile(files.key, 'TLS key file', secret) : null;
  const cert = files.cert ? readPemFile(files.cert, 'TLS certificate file') : null;
  return ChannelCredentials.createSsl(ca, key, cert, {
    checkServerIdentity: (host, peer) => checkServerIdentity(host, peer) ?? checkRole(peer, 'head'),
  });
}

function checkRole(peer: PeerCertificate, want: Role): Error | undefined {
  const role = roleOfOrganization(first(peer.subject?.O));
  if (role === want) return undefined;
  return new Error(`the server's certificate (CN=${first(peer.subject?.CN) ?? '?'}) has role ${role ?? 'none'}, not ${want}`);
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The identity a verified peer certificate carries; undefined when it has no
 * Muster role (a certificate of the CA made for something else).
 */
export function identityOf(peer: PeerCertificate | undefined): Identity | undefined {
  if (!peer?.subject) return undefined;
  const role = roleOfOrganization(first(peer.subject.O));
  const name = first(peer.subject.CN);
  if (!role || !name) return undefined;
  const groups: string[] = [];
  for (const san of (peer.subjectaltname ?? '').split(', ')) {
    if (!san.startsWith('URI:')) continue;
    const g = groupOfCallRightUri(san.slice('URI:'.length));
    if (g !== undefined) groups.push(g);
  }
  return { role, name, callGroups: groups.includes(ALL_GROUPS) ? 'all' : groups };
}

/**
 * Silences Node's DEP0123 ("Setting the TLS ServerName to an IP address"):
 * grpc-js passes the dialled host as the TLS server name, and heads are often
 * dialled by IP. The certificate is still checked against that IP (its IP
 * SANs); only SNI, which an IP cannot carry, is affected. Muster's own
 * programs call this at start; a library never changes its host's warnings,
 * so SDK users see the warning once per process.
 */
export function quietIpServernameWarning(): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
    const opts = rest[0];
    const code = typeof opts === 'object' && opts !== null ? (opts as { code?: string }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}
