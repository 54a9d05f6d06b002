/**
 * The Helm chart (deploy/helm/muster), rendered by the real helm (the version
 * scripts/helm.sh pins) with each variant CI checks: the default values, TLS
 * from cert-manager, and the dev values. Checked: `helm lint --strict`, the
 * values schema, the Kubernetes 1.33 and cert-manager schemas (kubernetes-models
 * 4.5.1, @kubernetes-models/cert-manager 4.4.4), our invariants, and the trust
 * boundaries of issue 21: which Secret is mounted into which container, with
 * which mode, as which uid. nats.conf goes through `nats-server -t` and etcd's
 * flags through `etcd --help` where those binaries are installed.
 * Nothing here needs a cluster, Docker or a GPU.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { headOptions, loadHeadConfig } from '@muster/head';
import { loadWorkerConfig, profileNames, workerOptions } from '@muster/worker';
import {
  MODELS, NAMESPACE, SECRETISH, VARIANTS, allContainers, checkOptions, cliContainers, containerEnv, find, flagsToKeys,
  has, helm, output, parseFlags, parseImage, podSpec, read, render, selects, unknownFields, workloads,
  type Container, type Obj,
} from './deploy-helpers.js';

/**
 * Flags of the shared design (issue 21) that other branches add to the CLIs. Until a
 * CLI knows one, it is left out of the option checks below (and listed by the last
 * test); once it exists, it is checked like every other flag.
 */
const DESIGNED_FLAGS = {
  head: ['tls-ca', 'tls-cert', 'tls-key', 'etcd-ca', 'etcd-cert', 'etcd-key', 'nats-ca', 'nats-account-seed-file'],
  worker: ['tls-ca', 'tls-cert', 'tls-key', 'shard-uid-range'],
};
const cliOptions = { head: headOptions, worker: workerOptions };
const pendingFlag = (role: 'head' | 'worker', flag: string) =>
  DESIGNED_FLAGS[role].includes(flag) && !cliOptions[role].some((o) => o.flag === flag);

const rendered = Object.fromEntries(Object.entries(VARIANTS).map(([name, files]) => [name, render(files)]));
const objectsOf = (variant: string) => rendered[variant]!.objects;
const mounts = (o: Obj, c: Container, secret: string) => {
  const vols = (podSpec(o).volumes ?? []).filter((v) => v.secret?.secretName === secret).map((v) => v.name);
  return (c.volumeMounts ?? []).filter((m) => vols.includes(m.name));
};
/** Every container that mounts Secret `secret`, as "<workload>/<container>". */
const mountedBy = (objects: Obj[], secret: string) =>
  workloads(objects).flatMap((o) => allContainers(podSpec(o)).filter((c) => mounts(o, c, secret).length > 0).map((c) => `${o.metadata.name}/${c.name}`));
const workerSets = (objects: Obj[]) => objects.filter((o) => o.kind === 'DaemonSet' && o.metadata.name.startsWith('muster-worker-'));
const nodeOf = (ds: Obj) => ds.metadata.annotations!['muster.io/node']!;

describe('helm, values and schema', () => {
  it.each(Object.entries(VARIANTS))('helm lint --strict passes with the %s values', (_, files) => {
    const r = helm(['lint', '.', '--strict', '--kube-version', '1.33.0', ...files.flatMap((f) => ['-f', f])]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it.each(Object.keys(VARIANTS))('helm template renders the %s values', (name) => {
    expect(rendered[name]!.status, rendered[name]!.stderr).toBe(0);
    expect(objectsOf(name).length).toBeGreaterThan(15);
  });

  it('refuses values the schema does not know or accept, naming them', () => {
    const base = VARIANTS.default!;
    expect(render(base, ['--set', 'head.replicass=2']).stderr).toMatch(/at '\/head': additional properties 'replicass' not allowed/);
    expect(render(base, ['--set', 'etcd.replicas=2']).stderr).toMatch(/\/etcd\/replicas/);
    expect(render(base, ['--set', 'images.head.tag=latest']).stderr).toMatch(/\/images\/head\/tag/);
    expect(render(base, ['--set', 'worker.nodes[0]=Bad_Node']).stderr).toMatch(/\/worker\/nodes\/0/);
    expect(render(base, ['--set', 'nats.accountJwt=not-a-jwt']).stderr).toMatch(/\/nats\/accountJwt/);
  });

  it('will not render NATS without its operator and account JWTs, or with one in the place of another', () => {
    expect(render([]).stderr).toMatch(/nats\.operatorJwt is required: see docs\/deploy\.md/);
    const values = YAML.parse(read('deploy/helm/muster/ci/test-values.yaml')) as { nats: Record<string, string> };
    const { operatorJwt, accountJwt, systemAccountJwt } = values.nats;
    expect(render(VARIANTS.default!, ['--set', `nats.operatorJwt=${accountJwt}`]).stderr).toMatch(/nats\.operatorJwt: the JWT's nats\.type is "account", expected "operator"/);
    expect(render(VARIANTS.default!, ['--set', `nats.accountJwt=${operatorJwt}`]).stderr).toMatch(/nats\.accountJwt: the JWT's nats\.type is "operator"/);
    expect(render(VARIANTS.default!, ['--set', `nats.accountJwt=${systemAccountJwt}`]).stderr).toMatch(/must not be the system account/);
  });
});

describe.each(Object.keys(VARIANTS))('chart with the %s values', (variant) => {
  const objects = objectsOf(variant);
  const certManager = variant === 'cert-manager';

  it('every object validates against the Kubernetes 1.33 (and cert-manager) schemas, with no field they do not know', () => {
    for (const o of objects) {
      const model = MODELS.get(`${o.apiVersion}/${o.kind}`);
      expect(model, `no schema for ${o.apiVersion} ${o.kind}`).toBeDefined();
      expect(() => new model!(o).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
      expect(unknownFields(model!, o), `${o.kind}/${o.metadata.name}`).toEqual([]);
    }
  });

  it('objects are unique, live in the release namespace, and have names the API server accepts', () => {
    const ids = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    expect(new Set(ids).size).toBe(ids.length);
    const clusterScoped = ['ClusterRole', 'ClusterRoleBinding'];
    for (const o of objects) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(clusterScoped.includes(o.kind) ? undefined : NAMESPACE);
    const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
    for (const o of objects) expect(o.metadata.name.length <= 63 && label.test(o.metadata.name), o.metadata.name).toBe(true);
    for (const o of workloads(objects)) {
      for (const c of allContainers(podSpec(o))) {
        expect(label.test(c.name), c.name).toBe(true);
        for (const port of c.ports ?? []) expect(port.name && port.name.length <= 15 && /^[a-z0-9-]*[a-z][a-z0-9-]*$/.test(port.name), `${c.name} port ${port.name}`).toBe(true);
      }
    }
  });

  it('selectors match their pod templates, and services select pods and name their ports', () => {
    for (const o of workloads(objects)) expect(selects(o.spec!.selector!.matchLabels!, o.spec!.template!.metadata.labels), o.metadata.name).toBe(true);
    // No two workloads' selectors overlap (each worker DaemonSet selects its own pods only).
    for (const a of workloads(objects)) {
      for (const b of workloads(objects)) if (a !== b) expect(selects(a.spec!.selector!.matchLabels!, b.spec!.template!.metadata.labels), `${a.metadata.name} selects ${b.metadata.name}`).toBe(false);
    }
    for (const svc of objects.filter((o) => o.kind === 'Service')) {
      const pods = workloads(objects).filter((w) => selects(svc.spec!.selector as Record<string, string>, w.spec!.template!.metadata.labels));
      expect(pods.length, `Service ${svc.metadata.name} selects nothing`).toBeGreaterThan(0);
      const portNames = pods.flatMap((w) => podSpec(w).containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)));
      for (const p of svc.spec!.ports!) if (typeof p.targetPort === 'string') expect(portNames, `${svc.metadata.name}:${p.name}`).toContain(p.targetPort);
    }
    for (const sts of objects.filter((o) => o.kind === 'StatefulSet')) {
      const headless = find(objects, 'Service', sts.spec!.serviceName!);
      expect(headless.spec!.clusterIP).toBe('None');
      expect(headless.spec!.publishNotReadyAddresses).toBe(true); // peers find each other before they are ready
      expect(sts.spec!.podManagementPolicy).toBe('Parallel'); // or member 0 waits forever for a quorum
    }
    for (const pdb of objects.filter((o) => o.kind === 'PodDisruptionBudget')) {
      expect(workloads(objects).some((w) => selects(pdb.spec!.selector!.matchLabels!, w.spec!.template!.metadata.labels)), pdb.metadata.name).toBe(true);
    }
  });

  it('every container has resource requests, a pinned image, and (except init containers) liveness and readiness probes on declared ports', () => {
    for (const o of workloads(objects)) {
      const p = podSpec(o);
      for (const c of allContainers(p)) {
        const where = `${o.kind}/${o.metadata.name}/${c.name}`;
        expect(c.resources?.requests?.cpu && c.resources.requests.memory, where).toBeTruthy();
        const tag = parseImage(c.image).tag;
        expect(tag && tag !== 'latest', `${where}: image ${c.image}`).toBe(true);
      }
      for (const c of p.containers) {
        const where = `${o.kind}/${o.metadata.name}/${c.name}`;
        expect(c.livenessProbe && c.readinessProbe, where).toBeTruthy();
        for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe].filter((x) => !!x)) {
          const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
          expect((c.ports ?? []).flatMap((x) => [x.name, x.containerPort]), `${where}: probe port ${port}`).toContain(port);
        }
      }
    }
  });

  it('what pods reference exists: config maps, volumes, service accounts, RBAC subjects; each Secret is made by cert-manager or documented', () => {
    const docs = read('docs/deploy.md');
    const issued = new Set(objects.filter((o) => o.kind === 'Certificate').map((o) => o.spec!.secretName!));
    for (const o of workloads(objects)) {
      const p = podSpec(o);
      if (p.serviceAccountName) find(objects, 'ServiceAccount', p.serviceAccountName);
      const volumes = new Set([...(p.volumes ?? []).map((v) => v.name), ...(o.spec!.volumeClaimTemplates ?? []).map((t) => t.metadata.name)]);
      for (const c of allContainers(p)) {
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `${o.metadata.name}/${c.name} mounts ${m.name}`).toBe(true);
        for (const f of c.envFrom ?? []) if (f.configMapRef) find(objects, 'ConfigMap', f.configMapRef.name);
      }
      for (const v of p.volumes ?? []) {
        if (v.configMap && v.configMap.name !== 'kube-root-ca.crt') find(objects, 'ConfigMap', v.configMap.name);
        const secret = v.secret?.secretName;
        if (!secret || issued.has(secret)) continue;
        // Made by hand: docs/deploy.md has the `kubectl create secret` for it, with every key mounted.
        const name = secret.startsWith('muster-node-') ? 'muster-node-' : secret;
        const at = docs.indexOf(`create secret generic ${name}`);
        expect(at, `docs/deploy.md: how to create Secret ${secret}`).toBeGreaterThan(-1);
        const command = docs.slice(at, docs.indexOf('\n\n', at));
        for (const key of v.secret!.items?.map((i) => i.key) ?? ['ca.crt', 'tls.crt', 'tls.key']) expect(command, `${secret}: key ${key}`).toContain(`${key}=`);
      }
    }
    for (const b of objects.filter((o) => o.kind === 'ClusterRoleBinding')) {
      for (const s of b.subjects!) expect(objects.some((o) => o.kind === s.kind && o.metadata.name === s.name && o.metadata.namespace === s.namespace)).toBe(true);
    }
  });

  it('holds no secret: no Secret object, no seed, key or password in config maps, env or args', () => {
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    const text = JSON.stringify(objects);
    expect(text).not.toMatch(/\bS[OAU][A-Z2-7]{56}\b/); // an nkey seed (operator, account, user)
    expect(text).not.toMatch(/PRIVATE KEY/);
    for (const cm of objects.filter((o) => o.kind === 'ConfigMap')) {
      for (const [k, v] of Object.entries(cm.data ?? {})) {
        expect(SECRETISH.test(k) && !k.endsWith('_FILE'), `ConfigMap ${cm.metadata.name} key ${k}`).toBe(false);
        expect(v, `ConfigMap ${cm.metadata.name}/${k}`).not.toMatch(/password\s*[:=]/i);
        expect(v, `ConfigMap ${cm.metadata.name}/${k}`).not.toMatch(/:\/\/[^/\s:@]+:[^/\s@]+@/);
      }
    }
    for (const o of workloads(objects)) {
      for (const c of allContainers(podSpec(o))) {
        for (const e of c.env ?? []) expect(SECRETISH.test(e.name) && !e.name.endsWith('_FILE'), `${o.metadata.name}/${c.name} env ${e.name}`).toBe(false);
        for (const a of c.args ?? []) expect(a, `${o.metadata.name}/${c.name}`).not.toMatch(/^--(nats-password|token)(=|$)|:\/\/[^/\s:@]+:[^/\s@]+@/);
      }
    }
  });

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

  it('muster-head and muster-worker get only options that exist (or that the shared design adds), with values they accept', () => {
    const dir = mkdtempSync(join(tmpdir(), 'muster-cfg-'));
    try {
      for (const role of ['head', 'worker'] as const) {
        const containers = cliContainers(objects, role);
        expect(containers.length, role).toBe(role === 'head' ? 1 : workerSets(objects).length);
        for (const c of containers) {
          let args = c.args ?? [];
          if (role === 'worker') {
            expect(args[0]).toBe('run');
            args = args.slice(1);
          }
          const flags = parseFlags(args).filter((f) => !pendingFlag(role, f.flag));
          const env = containerEnv(objects, c);
          expect(checkOptions(cliOptions[role], flags, Object.keys(env))).toEqual([]);
          const file = flags.find((f) => f.flag === 'config') ? join(dir, `${role}.json`) : undefined;
          if (file) writeFileSync(file, JSON.stringify({ labels: { 'muster.io/zone': 'a' }, nvlinkDomain: 'nvl-1' }));
          const sources = { file, env, flags: flagsToKeys(cliOptions[role], flags) };
          expect(role === 'head' ? loadHeadConfig(sources) : loadWorkerConfig(sources)).toBeDefined();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs 3 heads (1 in dev) on etcd, each advertising its stable pod name, which the heads\' certificate names', () => {
    const head = find(objects, 'StatefulSet', 'muster-head');
    expect(head.spec!.replicas).toBe(variant === 'dev' ? 1 : 3);
    const env = containerEnv(objects, cliContainers(objects, 'head')[0]!);
    expect(env.MUSTER_ADVERTISE_ADDRESS).toBe(`pod-0.${head.spec!.serviceName}.${NAMESPACE}.svc:7400`);
    const config = loadHeadConfig({ env });
    expect(config.store).toBe('etcd');
    if (!certManager) return;
    const cert = find(objects, 'Certificate', 'muster-head-tls');
    for (let i = 0; i < head.spec!.replicas!; i++) expect(cert.spec!.dnsNames).toContain(`muster-head-${i}.${head.spec!.serviceName}.${NAMESPACE}.svc`);
    expect(cert.spec!.dnsNames).toContain(`muster-head.${NAMESPACE}.svc`);
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

  it('runs each worker on GPU nodes with the NVIDIA runtime (dev: a simulated profile), tolerating GPU taints, on the host network', () => {
    for (const ds of workerSets(objects)) {
      const p = podSpec(ds);
      expect(p.tolerations?.some((t) => t.key === 'nvidia.com/gpu' && t.operator === 'Exists')).toBe(true);
      expect(p.hostNetwork).toBe(true);
      expect(p.dnsPolicy).toBe('ClusterFirstWithHostNet');
      const worker = p.containers.find((c) => c.name === 'worker')!;
      const env = Object.fromEntries((worker.env ?? []).map((e) => [e.name, e]));
      expect(env.MUSTER_NODE_ID?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
      expect(env.MUSTER_ADDRESS?.valueFrom?.fieldRef?.fieldPath).toBe('status.hostIP');
      expect(p.initContainers?.find((c) => c.name === 'topology')?.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
      if (variant === 'dev') {
        expect(profileNames).toContain(containerEnv(objects, worker).MUSTER_GPU_PROFILE);
        expect(p.runtimeClassName).toBeUndefined();
      } else {
        expect(p.runtimeClassName).toBe('nvidia');
        expect(p.nodeSelector?.['muster.io/worker']).toBe('true');
        expect(env.NVIDIA_VISIBLE_DEVICES?.value).toBe('all');
      }
    }
  });

  it.runIf(variant !== 'dev')('sets limits (but on the worker\'s ranks), keeps quorum through disruptions, and spreads etcd and NATS over nodes', () => {
    for (const o of workloads(objects)) {
      for (const c of allContainers(podSpec(o))) {
        if (o.metadata.name.startsWith('muster-worker-') && c.name === 'worker') expect(c.resources?.limits).toBeUndefined();
        else expect(c.resources?.limits?.memory && c.resources.limits.cpu, `${o.metadata.name}/${c.name}`).toBeTruthy();
      }
    }
    expect(find(objects, 'PodDisruptionBudget', 'muster-etcd').spec!.minAvailable).toBe(2);
    expect(find(objects, 'PodDisruptionBudget', 'muster-nats').spec!.maxUnavailable).toBe(1);
    for (const n of ['muster-etcd', 'muster-nats']) {
      const anti = podSpec(find(objects, 'StatefulSet', n)).affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
      expect(anti.some((a) => a.topologyKey === 'kubernetes.io/hostname' && a.labelSelector.matchLabels['app.kubernetes.io/name'] === n), n).toBe(true);
    }
  });
});

describe('flags of the shared design the chart passes', () => {
  it('are listed while a CLI lacks them (and no longer once it has them)', () => {
    const pending = (['head', 'worker'] as const).flatMap((role) => DESIGNED_FLAGS[role].filter((f) => pendingFlag(role, f)).map((f) => `${role} --${f}`));
    // Informational: which of them the CLIs do not know yet (other branches of issue 21 add them).
    console.info(`chart flags not in the CLIs yet: ${pending.join(', ') || 'none'}`);
    for (const role of ['head', 'worker'] as const) {
      for (const flag of DESIGNED_FLAGS[role]) {
        const passed = cliContainers(objectsOf('default'), role).some((c) => parseFlags(c.args!.slice(role === 'worker' ? 1 : 0)).some((f) => f.flag === flag));
        expect(passed, `${role} --${flag} is listed but not passed by the chart`).toBe(true);
      }
    }
  });
});
