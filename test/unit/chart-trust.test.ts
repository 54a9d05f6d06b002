/**
 * The trust boundaries of the Helm chart (issue 21, point 8), on the objects the
 * real helm renders for each variant CI checks: the heads alone hold the cluster
 * token, the NATS account seed and the etcd client key; each worker holds its own
 * node's key only, root-only, pinned to its node, and starts ranks under other
 * uids; etcd and NATS authenticate clients, peers and routes by certificate; with
 * cert-manager, every certificate carries the identity `muster cert` gives it
 * (@muster/contracts identity.ts: role in O, name in CN). nats.conf goes through
 * `nats-server -t` (which checks the JWTs' signatures) and etcd's flags through
 * `etcd --help` where those binaries are installed.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import {
  NAMESPACE, VARIANTS, cliContainers, containerEnv, find, has, mountedBy, mounts, nodeOf, output, parseFlags, podSpec,
  read, render, workerSets,
} from './deploy-helpers.js';

describe.each(Object.keys(VARIANTS))('chart trust boundaries with the %s values', (variant) => {
  const objects = render(VARIANTS[variant]!).objects;
  const certManager = variant === 'cert-manager';

  it('mounts the cluster token, the NATS account seed and the etcd client key into the heads only', () => {
    const heads = ['muster-head/head'];
    expect(mountedBy(objects, 'muster-token')).toEqual(heads);
    expect(mountedBy(objects, 'muster-nats-account')).toEqual(heads);
    expect(mountedBy(objects, 'muster-etcd-client-tls')).toEqual(heads);
    expect(mountedBy(objects, 'muster-head-tls')).toEqual(heads);
    expect(mountedBy(objects, 'muster-etcd-server-tls')).toEqual(['muster-etcd/etcd']);
    expect(mountedBy(objects, 'muster-nats-tls')).toEqual(['muster-nats/nats']);
    const head = find(objects, 'StatefulSet', 'muster-head');
    const env = containerEnv(objects, cliContainers(objects, 'head')[0]!);
    expect(env.MUSTER_TOKEN_FILE).toBe('/etc/muster/token/token');
    expect(mounts(head, podSpec(head).containers[0]!, 'muster-token').map((m) => m.mountPath)).toEqual(['/etc/muster/token']);
    for (const c of cliContainers(objects, 'worker')) expect(containerEnv(objects, c).MUSTER_TOKEN_FILE, 'a worker has no cluster token').toBeUndefined();
  });

  it('gives each worker its own node\'s key only: root-only (0400, no fsGroup), worker container only, pinned to that node', () => {
    const sets = workerSets(objects);
    const nodes = (YAML.parse(read(`deploy/helm/muster/${variant === 'dev' ? 'values-dev.yaml' : 'ci/test-values.yaml'}`)) as { worker: { nodes: string[] } }).worker.nodes;
    expect(sets.map(nodeOf).sort()).toEqual([...nodes].sort());
    for (const ds of sets) {
      const node = nodeOf(ds);
      const p = podSpec(ds);
      expect(mountedBy(objects, `muster-node-${node}`), node).toEqual([`${ds.metadata.name}/worker`]);
      const vol = p.volumes!.find((v) => v.secret?.secretName === `muster-node-${node}`)!;
      expect(vol.secret!.defaultMode).toBe(0o400);
      expect(p.securityContext?.fsGroup, 'fsGroup would make the key group-readable').toBeUndefined();
      expect(p.securityContext?.runAsUser).toBe(0);
      // The Kubernetes API token, too: root-only.
      expect(p.volumes!.find((v) => v.projected)?.projected?.defaultMode).toBe(0o400);
      const terms = p.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms;
      expect(terms).toEqual([{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }]);
      const worker = p.containers.find((c) => c.name === 'worker')!;
      const flags = parseFlags(worker.args!.slice(1));
      expect(flags.find((f) => f.flag === 'shard-uid-range')?.value).toMatch(/^[1-9][0-9]*-[1-9][0-9]*$/);
      expect(Number(flags.find((f) => f.flag === 'shard-uid-range')!.value.split('-')[0])).toBeGreaterThanOrEqual(1000);
      expect(flags.find((f) => f.flag === 'tls-key')?.value).toBe(`${mounts(ds, worker, `muster-node-${node}`)[0]!.mountPath}/tls.key`);
      expect(containerEnv(objects, worker).MUSTER_NODE_ID).toBe('gpu-node-1'); // spec.nodeName: the certificate's CN
      expect(worker.securityContext?.allowPrivilegeEscalation).toBe(false);
      expect(worker.securityContext?.capabilities?.drop).toEqual(['ALL']);
      expect(worker.securityContext?.capabilities?.add).not.toContain('SYS_ADMIN');
      expect(worker.securityContext?.capabilities?.add).not.toContain('SYS_PTRACE');
    }
  });

  it('runs etcd with TLS for clients and peers, both authenticated by a certificate of the etcd CA', () => {
    const etcd = find(objects, 'StatefulSet', 'muster-etcd');
    const flags = Object.fromEntries(parseFlags(podSpec(etcd).containers[0]!.args!).map((f) => [f.flag, f.value]));
    expect(flags['client-cert-auth']).toBe('true');
    expect(flags['peer-client-cert-auth']).toBe('true');
    for (const k of ['listen-client-urls', 'advertise-client-urls', 'listen-peer-urls', 'initial-advertise-peer-urls']) expect(flags[k], k).toMatch(/^https:\/\//);
    expect(flags['trusted-ca-file']).toBe(flags['peer-trusted-ca-file']);
    const members = flags['initial-cluster']!.split(',');
    expect(members.map((m) => m.split('=')[0])).toEqual(Array.from({ length: etcd.spec!.replicas! }, (_, i) => `muster-etcd-${i}`));
    for (const m of members) expect(m).toMatch(/=https:\/\//);
    expect(etcd.spec!.replicas).toBe(variant === 'dev' ? 1 : 3);
    expect(containerEnv(objects, cliContainers(objects, 'head')[0]!).MUSTER_ETCD_ENDPOINTS).toBe(`https://muster-etcd-client.${NAMESPACE}.svc:2379`);
  });

  it('runs NATS in operator mode with TLS: a MEMORY resolver preloaded with the system and Muster accounts, routes by certificate', () => {
    const conf = find(objects, 'ConfigMap', 'muster-nats-config').data!['nats.conf']!;
    const values = (YAML.parse(read('deploy/helm/muster/ci/test-values.yaml')) as { nats: Record<string, string> }).nats;
    expect(conf).toContain(`operator: ${values.operatorJwt}`);
    expect(conf).toMatch(/^resolver: MEMORY$/m);
    const sub = (jwt: string) => (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { sub: string }).sub;
    expect(conf).toContain(`system_account: ${sub(values.systemAccountJwt!)}`);
    expect(conf).toContain(`${sub(values.accountJwt!)}: ${values.accountJwt}`);
    expect(conf).toContain(`${sub(values.systemAccountJwt!)}: ${values.systemAccountJwt}`);
    expect(conf).not.toMatch(/authorization|password|no_auth_user/);
    expect(conf).toMatch(/cluster \{[\s\S]*tls \{[\s\S]*verify: true/);
    const nats = find(objects, 'StatefulSet', 'muster-nats');
    const routes = [...conf.matchAll(/nats-route:\/\/(muster-nats-\d+)\./g)].map((m) => m[1]);
    expect(routes).toEqual(Array.from({ length: nats.spec!.replicas! }, (_, i) => `muster-nats-${i}`));
    expect(containerEnv(objects, cliContainers(objects, 'head')[0]!).MUSTER_NATS_URL).toBe(`tls://muster-nats.${NAMESPACE}.svc:4222`);
  });

  it.skipIf(!has('nats-server') || !has('openssl') || !has('etcd'))('nats.conf passes nats-server -t (JWT signatures checked), and etcd knows every flag', () => {
    const dir = mkdtempSync(join(tmpdir(), 'muster-chart-'));
    try {
      const ssl = output('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt'), '-days', '1', '-subj', '/CN=nats']);
      expect(ssl.status, ssl.text).toBe(0);
      copyFileSync(join(dir, 'tls.crt'), join(dir, 'ca.crt'));
      const conf = find(objects, 'ConfigMap', 'muster-nats-config').data!['nats.conf']!.replaceAll('/etc/nats/tls/', `${dir}/`);
      writeFileSync(join(dir, 'nats.conf'), conf);
      const ok = output('nats-server', ['-t', '-c', join(dir, 'nats.conf')], { POD_NAME: 'muster-nats-0' });
      expect(ok.status, ok.text).toBe(0);
      // A forged account JWT (its signature broken) is refused: the check is real.
      writeFileSync(join(dir, 'bad.conf'), conf.replace(/(: eyJ[^\n]*)(..)\n(\s*\})/, (_, a: string, b: string, c: string) => `${a}${b === 'AA' ? 'BB' : 'AA'}\n${c}`));
      expect(output('nats-server', ['-t', '-c', join(dir, 'bad.conf')], { POD_NAME: 'muster-nats-0' }).status).not.toBe(0);
      const help = output('etcd', ['--help']).text;
      for (const f of parseFlags(podSpec(find(objects, 'StatefulSet', 'muster-etcd')).containers[0]!.args!)) expect(help, f.flag).toContain(`--${f.flag} `);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.runIf(certManager)('issues every certificate as `muster cert` does: role in O, name in CN, ECDSA P-256; etcd\'s from their own CA', () => {
    const certs = objects.filter((o) => o.kind === 'Certificate' && !o.spec!.isCA);
    const bySecret = (secret: string) => {
      const c = certs.find((x) => x.spec!.secretName === secret);
      if (!c) throw new Error(`no Certificate writes Secret ${secret}`);
      return c;
    };
    const issuerOf = (secret: string) => bySecret(secret).spec!.issuerRef!.name;
    expect(issuerOf('muster-etcd-server-tls')).toBe('muster-etcd-ca');
    expect(issuerOf('muster-etcd-client-tls')).toBe('muster-etcd-ca');
    for (const name of ['muster-head-tls', 'muster-nats-tls', ...workerSets(objects).map((d) => `muster-node-${nodeOf(d)}`)]) expect(issuerOf(name), name).toBe('muster-ca');
    const roles = Object.fromEntries(certs.map((c) => [c.spec!.secretName, `${c.spec!.subject!.organizations!.join()} ${c.spec!.commonName}`]));
    expect(roles['muster-head-tls']).toBe('muster:head muster-head');
    expect(roles['muster-etcd-client-tls']).toBe('muster:head muster-head');
    expect(roles['muster-nats-tls']).toBe('muster:service nats');
    expect(roles['muster-etcd-server-tls']).toBe('muster:service etcd');
    for (const d of workerSets(objects)) expect(roles[`muster-node-${nodeOf(d)}`]).toBe(`muster:node ${nodeOf(d)}`);
    for (const c of certs) {
      expect(c.spec!.privateKey).toMatchObject({ algorithm: 'ECDSA', size: 256 });
      expect(c.spec!.usages).toEqual(expect.arrayContaining(['server auth', 'client auth']));
    }
    // The servers' names: what clients, peers and routes dial.
    const etcd = bySecret('muster-etcd-server-tls').spec!.dnsNames!;
    expect(etcd).toContain(`muster-etcd-0.muster-etcd.${NAMESPACE}.svc`);
    expect(etcd).toContain(`muster-etcd-client.${NAMESPACE}.svc`);
    expect(bySecret('muster-nats-tls').spec!.dnsNames).toContain(`muster-nats.${NAMESPACE}.svc`);
    for (const issuer of ['muster-ca', 'muster-etcd-ca']) expect(find(objects, 'Issuer', issuer).spec!.ca!.secretName).toBe(issuer);
  });

});
