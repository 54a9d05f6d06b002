/**
 * The Helm chart (deploy/helm/muster), rendered by the real helm (the version
 * scripts/helm.sh pins) with each variant CI checks: the default values, TLS
 * from cert-manager, and the dev values. Checked here: `helm lint --strict`,
 * the values schema, the Kubernetes 1.33 and cert-manager schemas
 * (kubernetes-models 4.5.1, @kubernetes-models/cert-manager 4.4.4), our
 * invariants, and the flags and env the head and worker get. The trust
 * boundaries (which Secret is mounted where, TLS of etcd and NATS, the
 * certificates' identities) are chart-trust.test.ts.
 * Nothing here needs a cluster, Docker or a GPU.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { headOptions, loadHeadConfig } from '@muster/head';
import { loadWorkerConfig, profileNames, workerOptions } from '@muster/worker';
import {
  MODELS, NAMESPACE, SECRETISH, VARIANTS, allContainers, checkOptions, cliContainers, containerEnv, find, flagsToKeys,
  helm, parseFlags, parseImage, podSpec, read, render, selects, unknownFields, workerSets, workloads,
} from './deploy-helpers.js';

const cliOptions = { head: headOptions, worker: workerOptions };

const rendered = Object.fromEntries(Object.entries(VARIANTS).map(([name, files]) => [name, render(files)]));
const objectsOf = (variant: string) => rendered[variant]!.objects;

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
          const flags = parseFlags(args);
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
