/**
 * Deployment artifacts (deploy/): the Kubernetes overlays rendered by
 * deploy/render.mjs, checked offline against the Kubernetes 1.33 schemas
 * (kubernetes-models 4.5.1 is generated from v1.33.0) and against our own
 * invariants; the Dockerfile; the systemd units and their env files.
 * Nothing here needs a cluster, Docker or a GPU. The checks that run local
 * etcd / nats-server / systemd-analyze binaries skip where they are absent.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as apps from 'kubernetes-models/apps/v1';
import * as core from 'kubernetes-models/v1';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import * as policy from 'kubernetes-models/policy/v1';
import * as rbac from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import type { OptionSpec } from '@muster/common';
import { headOptions, loadHeadConfig } from '@muster/head';
import { loadWorkerConfig, profileNames, workerOptions } from '@muster/worker';
import {
  applyJsonPatch, overlayNames, parseImage, renderDir, renderOverlay, renderedPath, repoRoot, type KubeObject,
} from '../../deploy/render.mjs';

// ---- shapes of the objects we ship (the fields the checks read) ----
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string }; configMapKeyRef?: unknown };
}
interface Probe { httpGet?: { path: string; port: number | string }; tcpSocket?: { port: number | string } }
interface Container {
  name: string; image: string; command?: string[]; args?: string[]; env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: Probe; readinessProbe?: Probe; startupProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Volume { name: string; secret?: { secretName: string }; configMap?: { name: string }; projected?: { sources: { configMap?: { name: string } }[] } }
interface Toleration { key?: string; operator?: string; effect?: string }
interface PodSpec {
  containers: Container[]; initContainers?: Container[]; volumes?: Volume[]; serviceAccountName?: string;
  hostNetwork?: boolean; dnsPolicy?: string; runtimeClassName?: string; nodeSelector?: Record<string, string>;
  tolerations?: Toleration[]; affinity?: { nodeAffinity?: unknown; podAntiAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } }[] } };
}
interface Spec {
  replicas?: number; serviceName?: string; podManagementPolicy?: string; strategy?: { type: string };
  selector?: { matchLabels?: Record<string, string> } & Record<string, string>;
  template?: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  ports?: { name: string; port: number; targetPort?: number | string }[];
  clusterIP?: string; publishNotReadyAddresses?: boolean; minAvailable?: number; maxUnavailable?: number;
  volumeClaimTemplates?: { metadata: { name: string } }[];
}
type Obj = KubeObject & { spec?: Spec; data?: Record<string, string>; subjects?: { kind: string; name: string; namespace: string }[] };

const read = (rel: string) => readFileSync(join(repoRoot, rel), 'utf8');
const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
/** stdout + stderr of a local binary (help texts go to either). */
const output = (bin: string, args: string[], env?: NodeJS.ProcessEnv) => {
  const r = spawnSync(bin, args, { encoding: 'utf8', env: env ? { ...process.env, ...env } : process.env });
  return { status: r.status, text: `${r.stdout}${r.stderr}` };
};
const overlays = overlayNames();
const workloads = (objs: Obj[]) => objs.filter((o) => o.spec?.template);
const podSpec = (o: Obj) => o.spec!.template!.spec;
const allContainers = (p: PodSpec) => [...(p.initContainers ?? []), ...p.containers];
const find = (objs: Obj[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`${kind}/${name} is not rendered`);
  return o;
};
/** muster-head / muster-worker CLI containers (not the topology script, which overrides the command). */
const cliContainers = (objs: Obj[], role: 'head' | 'worker') =>
  workloads(objs).flatMap((o) => podSpec(o).containers).filter((c) => parseImage(c.image).name.endsWith(`muster-${role}`) && !c.command);
const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

// ---- Kubernetes schema models, by apiVersion/kind ----
type Model = { apiVersion: string; kind: string; prototype: { validate(): void }; new (data: unknown): { validate(): void } };
const MODELS = new Map<string, Model>();
for (const ns of [core, apps, rbac, policy, networking] as Record<string, unknown>[]) {
  for (const v of Object.values(ns)) {
    const m = v as Model;
    if (typeof v === 'function' && typeof m.apiVersion === 'string' && typeof m.kind === 'string') MODELS.set(`${m.apiVersion}/${m.kind}`, m);
  }
}

/** Paths of `obj` that the schema's validator never reads: fields the schema does not know. */
function unknownFields(model: Model, obj: unknown): string[] {
  const seen = new Set<string>();
  const wrap = (v: unknown, path: string): unknown => (v === null || typeof v !== 'object' ? v : new Proxy(v, {
    get(t, k, r) {
      const value = Reflect.get(t, k, r);
      if (typeof k !== 'string') return value;
      seen.add(`${path}/${k}`);
      return wrap(value, `${path}/${k}`);
    },
  }));
  try {
    model.prototype.validate.call(wrap(obj, ''));
  } catch {
    // invalid objects are reported by the schema test
  }
  const out: string[] = [];
  const walk = (v: unknown, path: string) => {
    if (v === null || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v)) {
      if (!seen.has(`${path}/${k}`)) out.push(`${path}/${k}`);
      else walk(x, `${path}/${k}`);
    }
  };
  walk(obj, '');
  return out;
}

// ---- flags and env of our CLIs ----
/** `--flag value` / `--flag=value` pairs; a bare word is a subcommand and must come first. */
function parseFlags(args: string[]): { flag: string; value: string }[] {
  const out: { flag: string; value: string }[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}" in ${args.join(' ')}`);
    const eq = a.indexOf('=');
    if (eq > 0) out.push({ flag: a.slice(2, eq), value: a.slice(eq + 1) });
    else out.push({ flag: a.slice(2), value: args[++i] ?? '' });
  }
  return out;
}
const EXTRA_ENV = ['MUSTER_LOG_LEVEL']; // read by the logger, not an option
function checkOptions(options: OptionSpec[], flags: { flag: string }[], envNames: string[]): string[] {
  const known = new Set(['config', ...options.map((o) => o.flag)]);
  const knownEnv = new Set([...EXTRA_ENV, ...options.map((o) => o.env)]);
  return [
    ...flags.filter((f) => !known.has(f.flag)).map((f) => `unknown flag --${f.flag}`),
    ...envNames.filter((e) => e.startsWith('MUSTER_') && !knownEnv.has(e)).map((e) => `unknown env ${e}`),
  ];
}
const flagsToKeys = (options: OptionSpec[], flags: { flag: string; value: string }[]) =>
  Object.fromEntries(flags.filter((f) => f.flag !== 'config').map((f) => [options.find((o) => o.flag === f.flag)!.key, f.value]));

/** A container's environment as the kubelet would build it (downward API and secrets as placeholders). */
function containerEnv(objs: Obj[], c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) if (from.configMapRef) Object.assign(env, find(objs, 'ConfigMap', from.configMapRef.name).data);
  const fields: Record<string, string> = { 'spec.nodeName': 'gpu-node-1', 'status.hostIP': '10.0.0.21', 'metadata.name': 'pod-0', 'metadata.namespace': 'muster' };
  for (const e of c.env ?? []) {
    env[e.name] = e.value ?? (e.valueFrom?.fieldRef ? fields[e.valueFrom.fieldRef.fieldPath] ?? 'x' : 'secret-placeholder');
  }
  return env;
}

const SECRETISH = /PASSWORD|SECRET|TOKEN$|CREDENTIAL/i;

describe('deploy/render.mjs', () => {
  it('knows the overlays the docs describe', () => {
    expect(overlays).toEqual(['dev', 'production']);
  });

  it.each(overlays)('renders %s byte-identically twice, and the committed copy is that render', (name) => {
    const a = renderOverlay(name).yaml;
    expect(renderOverlay(name).yaml).toBe(a);
    expect(read(relative(repoRoot, renderedPath(name))), `deploy/kubernetes/rendered/${name}.yaml is stale: run node deploy/render.mjs --write`).toBe(a);
  });

  it('--check agrees', () => {
    expect(spawnSync(process.execPath, [join(repoRoot, 'deploy/render.mjs'), '--check']).status).toBe(0);
  });

  it('applies RFC 6902 patches without touching the input', () => {
    const doc = { a: { b: [1, 2, 3] }, c: 'x' };
    const out = applyJsonPatch(doc, [
      { op: 'add', path: '/a/b/1', value: 9 },
      { op: 'add', path: '/a/b/-', value: 4 },
      { op: 'remove', path: '/a/b/0' },
      { op: 'replace', path: '/c', value: { 'd/e': 1 } },
      { op: 'test', path: '/c/d~1e', value: 1 },
      { op: 'copy', from: '/c', path: '/f' },
      { op: 'move', from: '/f', path: '/g' },
    ]);
    expect(out).toEqual({ a: { b: [9, 2, 3, 4] }, c: { 'd/e': 1 }, g: { 'd/e': 1 } });
    expect(doc).toEqual({ a: { b: [1, 2, 3] }, c: 'x' });
    expect(() => applyJsonPatch(doc, [{ op: 'replace', path: '/missing', value: 1 }])).toThrow(/does not exist/);
    expect(() => applyJsonPatch(doc, [{ op: 'remove', path: '/a/b/3' }])).toThrow(/out of range/);
    expect(() => applyJsonPatch(doc, [{ op: 'test', path: '/c', value: 'y' }])).toThrow(/test failed/);
    expect(() => applyJsonPatch(doc, [{ op: 'add', path: '/x/y', value: 1 }])).toThrow(/does not exist/);
  });

  describe('with an overlay of ours', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'muster-overlay-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const overlay = (k: string) => {
      writeFileSync(join(dir, 'kustomization.yaml'), k);
      return () => renderDir(dir);
    };
    const prod = () => relative(dir, join(repoRoot, 'deploy/kubernetes/overlays/production'));

    it('stacks on production and sets images (kustomize `images`)', () => {
      const { objects } = overlay(`resources: [${prod()}]\nimages:\n  - { name: muster-worker, newName: reg.example/muster-worker, newTag: "1.2.3" }\n  - { name: muster-head, newName: reg.example/muster-head }\n`)();
      const images = workloads(objects as Obj[]).flatMap((o) => allContainers(podSpec(o)).map((c) => c.image));
      expect(images.filter((i) => i.includes('muster-worker'))).toEqual(['reg.example/muster-worker:1.2.3', 'reg.example/muster-worker:1.2.3']);
      expect(images.filter((i) => i.includes('muster-head'))).toEqual(['reg.example/muster-head:0.1.0']);
    });

    it('refuses what it does not implement instead of ignoring it', () => {
      expect(overlay(`resources: [${prod()}]\nnamePrefix: x-\n`)).toThrow(/namePrefix.*not supported/);
      expect(overlay(`resources: [${prod()}]\npatches:\n  - target: { kind: Deployment, name: nope }\n    patch: "[]"\n`)).toThrow(/matches no object/);
      expect(overlay(`resources: [${prod()}]\npatches:\n  - target: { kind: Deployment, name: muster-head }\n    patch: "spec: {}"\n`)).toThrow(/JSON 6902/);
      expect(overlay(`configMapGenerator:\n  - { name: x, literals: [a=b] }\n`)).toThrow(/disableNameSuffixHash/);
      expect(overlay(`resources: [${prod()}]\nimages:\n  - { name: nginx, newTag: "1" }\n`)).toThrow(/used by no container/);
    });
  });
});

describe.each(overlays)('overlay %s', (name) => {
  const objects = renderOverlay(name).objects as Obj[];
  const simulated = cliContainers(objects, 'worker').some((c) => containerEnv(objects, c).MUSTER_GPU_PROFILE);

  it('every object validates against the Kubernetes 1.33 schemas', () => {
    for (const o of objects) {
      const model = MODELS.get(`${o.apiVersion}/${o.kind}`);
      expect(model, `no schema for ${o.apiVersion} ${o.kind}`).toBeDefined();
      expect(() => new model!(o).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
    }
  });

  it('no object carries a field the schema does not know (the API server would refuse it)', () => {
    for (const o of objects) expect(unknownFields(MODELS.get(`${o.apiVersion}/${o.kind}`)!, o), `${o.kind}/${o.metadata.name}`).toEqual([]);
  });

  it('objects are unique, live in namespace muster, and have names the API server accepts', () => {
    const ids = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    expect(new Set(ids).size).toBe(ids.length);
    const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'];
    for (const o of objects) expect(o.metadata.namespace ?? (clusterScoped.includes(o.kind) ? 'cluster' : undefined), o.metadata.name).toBe(clusterScoped.includes(o.kind) ? 'cluster' : 'muster');
    const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
    for (const o of objects) expect(o.metadata.name.length <= 63 && label.test(o.metadata.name), o.metadata.name).toBe(true);
    for (const o of workloads(objects)) {
      const p = podSpec(o);
      for (const c of allContainers(p)) {
        expect(label.test(c.name), c.name).toBe(true);
        for (const port of c.ports ?? []) expect(port.name && port.name.length <= 15 && /^[a-z0-9-]*[a-z][a-z0-9-]*$/.test(port.name), `${c.name} port ${port.name}`).toBe(true);
      }
      for (const v of p.volumes ?? []) expect(label.test(v.name), v.name).toBe(true);
    }
  });

  it('selectors match their pod templates, and services select pods and name their ports', () => {
    for (const o of workloads(objects)) expect(selects(o.spec!.selector!.matchLabels!, o.spec!.template!.metadata.labels), o.metadata.name).toBe(true);
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
      expect(sts.spec!.podManagementPolicy).toBe('Parallel'); // or etcd-0 waits forever for a quorum
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
        expect(c.resources?.requests?.cpu, where).toBeTruthy();
        expect(c.resources?.requests?.memory, where).toBeTruthy();
        const tag = parseImage(c.image).tag;
        expect(tag && tag !== 'latest', `${where}: image ${c.image}`).toBe(true);
      }
      for (const c of p.containers) {
        const where = `${o.kind}/${o.metadata.name}/${c.name}`;
        expect(c.livenessProbe, where).toBeDefined();
        expect(c.readinessProbe, where).toBeDefined();
        for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe].filter((x): x is Probe => !!x)) {
          const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
          expect(port, where).toBeDefined();
          const declared = (c.ports ?? []).flatMap((x) => [x.name, x.containerPort]);
          expect(declared, `${where}: probe port ${port}`).toContain(port);
        }
      }
    }
  });

  it('what pods reference exists: config maps, volumes, service accounts, RBAC subjects', () => {
    for (const o of workloads(objects)) {
      const p = podSpec(o);
      if (p.serviceAccountName) find(objects, 'ServiceAccount', p.serviceAccountName);
      const volumes = new Set([...(p.volumes ?? []).map((v) => v.name), ...(o.spec!.volumeClaimTemplates ?? []).map((t) => t.metadata.name)]);
      for (const c of allContainers(p)) {
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `${o.metadata.name}/${c.name} mounts ${m.name}`).toBe(true);
        for (const f of c.envFrom ?? []) if (f.configMapRef) find(objects, 'ConfigMap', f.configMapRef.name);
      }
      for (const v of p.volumes ?? []) if (v.configMap) find(objects, 'ConfigMap', v.configMap.name);
    }
    for (const b of objects.filter((o) => o.kind === 'ClusterRoleBinding')) {
      for (const s of b.subjects!) expect(objects.some((o) => o.kind === s.kind && o.metadata.name === s.name && o.metadata.namespace === s.namespace)).toBe(true);
    }
  });

  it('holds no secret: none rendered, none in config maps, env values or args; secrets only through secretKeyRef and secret volumes', () => {
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    for (const cm of objects.filter((o) => o.kind === 'ConfigMap')) {
      for (const [k, v] of Object.entries(cm.data ?? {})) {
        expect(SECRETISH.test(k) && !k.endsWith('_FILE'), `ConfigMap ${cm.metadata.name} key ${k}`).toBe(false);
        expect(v, `ConfigMap ${cm.metadata.name}/${k}`).not.toMatch(/password\s*[:=]\s*(?!\$)[^\s,}]/i);
        expect(v, `ConfigMap ${cm.metadata.name}/${k}`).not.toMatch(/:\/\/[^/\s:@]+:[^/\s@]+@/);
      }
    }
    for (const o of workloads(objects)) {
      for (const c of allContainers(podSpec(o))) {
        const where = `${o.metadata.name}/${c.name}`;
        const fromSecret = new Set((c.env ?? []).filter((e) => e.valueFrom?.secretKeyRef).map((e) => e.name));
        for (const e of c.env ?? []) if (SECRETISH.test(e.name) && !e.name.endsWith('_FILE')) expect(fromSecret.has(e.name), `${where} env ${e.name}`).toBe(true);
        for (const a of [...(c.command ?? []), ...(c.args ?? [])]) {
          expect(a, where).not.toMatch(/^--(nats-password|token)(=|$)/);
          for (const m of a.matchAll(/:\/\/[^/\s:@]+:([^/\s@]+)@/g)) {
            const ref = /^\$\(([A-Z0-9_]+)\)$/.exec(m[1]!);
            expect(ref && fromSecret.has(ref[1]!), `${where}: credentials in ${a} must be $(VAR) of a secretKeyRef env`).toBe(true);
          }
        }
        const env = containerEnv(objects, c);
        if (env.MUSTER_TOKEN_FILE) {
          const secretVolumes = new Set((podSpec(o).volumes ?? []).filter((v) => v.secret).map((v) => v.name));
          const mount = (c.volumeMounts ?? []).find((m) => env.MUSTER_TOKEN_FILE!.startsWith(`${m.mountPath}/`));
          expect(mount && secretVolumes.has(mount.name), `${where}: the token file must be on a secret volume`).toBe(true);
        }
      }
    }
  });

  it('docs/deploy.md says how to create every secret the manifests read, with every key', () => {
    const docs = read('docs/deploy.md');
    /** The `kubectl create secret generic <name>` command, continuation lines included. */
    const command = (secret: string) => {
      const at = docs.indexOf(`create secret generic ${secret} `);
      if (at < 0) return '';
      const lines = docs.slice(at).split('\n');
      const end = lines.findIndex((l) => !l.trimEnd().endsWith('\\'));
      return lines.slice(0, end + 1).join('\n');
    };
    for (const o of workloads(objects)) {
      const p = podSpec(o);
      for (const c of allContainers(p)) {
        for (const e of c.env ?? []) {
          const ref = e.valueFrom?.secretKeyRef;
          if (ref) expect(command(ref.name), `secret ${ref.name} key ${ref.key}`).toContain(`--from-literal=${ref.key}=`);
        }
        const tokenFile = containerEnv(objects, c).MUSTER_TOKEN_FILE;
        const mount = (c.volumeMounts ?? []).find((m) => tokenFile?.startsWith(`${m.mountPath}/`));
        const secret = p.volumes?.find((v) => v.name === mount?.name)?.secret?.secretName;
        if (secret) expect(command(secret), `secret ${secret}`).toContain(`--from-literal=${basename(tokenFile!)}=`);
      }
    }
  });

  it('muster-head and muster-worker get only options that exist, with values they accept', () => {
    const dir = mkdtempSync(join(tmpdir(), 'muster-cfg-'));
    try {
      for (const [role, options] of [['head', headOptions], ['worker', workerOptions]] as const) {
        const containers = cliContainers(objects, role);
        expect(containers.length, role).toBe(1);
        for (const c of containers) {
          let args = c.args ?? [];
          if (role === 'worker') {
            expect(args[0]).toBe('run');
            args = args.slice(1);
          }
          const flags = parseFlags(args);
          const env = containerEnv(objects, c);
          expect(checkOptions(options, flags, Object.keys(env))).toEqual([]);
          // The config file is the topology init container's output: labels + nvlinkDomain.
          const file = flags.find((f) => f.flag === 'config') ? join(dir, `${role}.json`) : undefined;
          if (file) writeFileSync(file, JSON.stringify({ labels: { 'muster.io/zone': 'a' }, nvlinkDomain: 'nvl-1' }));
          const sources = { file, env, flags: flagsToKeys(options, flags) };
          const config = role === 'head' ? loadHeadConfig(sources) : loadWorkerConfig(sources);
          expect(config).toBeDefined();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs 3 heads in production (1 in dev) on etcd, replaced one at a time, each advertising its pod address', () => {
    const head = find(objects, 'Deployment', 'muster-head');
    expect(head.spec!.replicas).toBe(name === 'production' ? 3 : 1);
    expect(head.spec!.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
    expect(find(objects, 'PodDisruptionBudget', 'muster-head').spec!.maxUnavailable).toBe(1);
    const container = cliContainers(objects, 'head')[0]!;
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e]));
    expect(env.POD_IP?.valueFrom?.fieldRef?.fieldPath).toBe('status.podIP');
    // Kubernetes expands $(POD_IP) because POD_IP is defined before it.
    expect(env.MUSTER_ADVERTISE_ADDRESS?.value).toBe('$(POD_IP):7400');
    const config = loadHeadConfig({ env: { ...containerEnv(objects, container), MUSTER_ADVERTISE_ADDRESS: '10.0.0.7:7400' } });
    expect(config.store).toBe('etcd');
    expect(config.advertiseAddress).toBe('10.0.0.7:7400');
  });

  it('runs the worker as a DaemonSet that tolerates GPU taints, on GPU nodes with the NVIDIA runtime (or a simulated profile)', () => {
    const ds = find(objects, 'DaemonSet', 'muster-worker');
    const p = podSpec(ds);
    expect(p.tolerations?.some((t) => t.key === 'nvidia.com/gpu' && t.operator === 'Exists' && (t.effect === undefined || t.effect === 'NoSchedule'))).toBe(true);
    expect(p.hostNetwork).toBe(true);
    expect(p.dnsPolicy).toBe('ClusterFirstWithHostNet'); // else muster-head.muster.svc does not resolve
    const worker = cliContainers(objects, 'worker')[0]!;
    const env = Object.fromEntries((worker.env ?? []).map((e) => [e.name, e]));
    expect(env.MUSTER_NODE_ID?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    expect(env.MUSTER_ADDRESS?.valueFrom?.fieldRef?.fieldPath).toBe('status.hostIP');
    const init = p.initContainers?.find((c) => c.name === 'topology');
    expect(init?.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    expect(worker.args).toContain('/run/muster/topology.json');
    if (simulated) {
      expect(profileNames).toContain(containerEnv(objects, worker).MUSTER_GPU_PROFILE);
      expect(p.runtimeClassName).toBeUndefined();
    } else {
      expect(p.runtimeClassName).toBe('nvidia');
      expect(p.nodeSelector?.['muster.io/worker']).toBe('true');
      expect(env.NVIDIA_VISIBLE_DEVICES?.value).toBe('all');
      expect(env.NVIDIA_DRIVER_CAPABILITIES?.value).toMatch(/utility/); // nvidia-smi
    }
  });

  it('etcd --initial-cluster and NATS --routes list exactly their replicas', () => {
    const etcd = find(objects, 'StatefulSet', 'etcd');
    const initial = parseFlags(podSpec(etcd).containers[0]!.args!).find((f) => f.flag === 'initial-cluster')!.value;
    const n = etcd.spec!.replicas!;
    expect(initial.split(',').map((m) => m.split('=')[0])).toEqual(Array.from({ length: n }, (_, i) => `etcd-${i}`));
    const nats = find(objects, 'StatefulSet', 'nats');
    const routes = parseFlags(podSpec(nats).containers[0]!.args!).find((f) => f.flag === 'routes')!.value;
    expect(routes.split(',').map((r) => /@(nats-\d+)\./.exec(r)?.[1])).toEqual(Array.from({ length: nats.spec!.replicas! }, (_, i) => `nats-${i}`));
    if (name === 'production') expect([n, nats.spec!.replicas]).toEqual([3, 3]);
    if (name === 'dev') expect([n, nats.spec!.replicas]).toEqual([1, 1]);
  });

  it.skipIf(!has('etcd') || !has('nats-server'))('passes only flags the local etcd and nats-server know, and nats.conf parses', () => {
    const etcdHelp = output('etcd', ['--help']).text;
    for (const f of parseFlags(podSpec(find(objects, 'StatefulSet', 'etcd')).containers[0]!.args!)) expect(etcdHelp, f.flag).toContain(`--${f.flag} `);
    const natsHelp = output('nats-server', ['--help']).text;
    for (const f of parseFlags(podSpec(find(objects, 'StatefulSet', 'nats')).containers[0]!.args!)) expect(natsHelp, f.flag).toMatch(new RegExp(`--${f.flag}[ ,]`));
    const dir = mkdtempSync(join(tmpdir(), 'muster-nats-'));
    try {
      writeFileSync(join(dir, 'nats.conf'), find(objects, 'ConfigMap', 'nats-config').data!['nats.conf']!);
      const r = output('nats-server', ['-t', '-c', join(dir, 'nats.conf')], { POD_NAME: 'nats-0', MUSTER_NATS_PASSWORD: 'p', NATS_ROUTE_PASSWORD: 'r' });
      expect(r.status, r.text).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('overlay production, beyond the common checks', () => {
  const objects = renderOverlay('production').objects as Obj[];
  it('sets limits (but on the worker\'s ranks), keeps quorum through disruptions, and spreads etcd and NATS over nodes', () => {
    for (const o of workloads(objects)) {
      for (const c of allContainers(podSpec(o))) {
        // The worker's ranks run in its container: a limit there would OOM-kill or throttle them.
        if (o.metadata.name === 'muster-worker' && c.name === 'worker') expect(c.resources?.limits).toBeUndefined();
        else expect(c.resources?.limits?.memory && c.resources.limits.cpu, `${o.metadata.name}/${c.name}`).toBeTruthy();
      }
    }
    expect(find(objects, 'PodDisruptionBudget', 'etcd').spec!.minAvailable).toBe(2);
    expect(find(objects, 'PodDisruptionBudget', 'nats').spec!.maxUnavailable).toBe(1);
    for (const n of ['etcd', 'nats']) {
      const anti = podSpec(find(objects, 'StatefulSet', n)).affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
      expect(anti.some((a) => a.topologyKey === 'kubernetes.io/hostname' && a.labelSelector.matchLabels['app.kubernetes.io/name'] === n), n).toBe(true);
    }
  });
});

describe('worker topology init script (deploy/kubernetes/base/worker-topology.mjs)', () => {
  const script = join(repoRoot, 'deploy/kubernetes/base/worker-topology.mjs');
  let server: Server;
  let base: string;
  let dir: string;
  const nodes: Record<string, Record<string, string>> = {
    'gpu-1': { 'topology.kubernetes.io/zone': 'us-east-1a', 'muster.io/rack': 'r12', 'nvidia.com/gpu.clique': 'abc.3', 'kubernetes.io/os': 'linux' },
    'gpu-2': { 'topology.kubernetes.io/zone': 'us-east-1a', 'muster.io/zone': 'hall-2', 'muster.io/nvlink-domain': 'nvl72-a', 'nvidia.com/gpu.clique': 'abc.3' },
    'gpu-3': {},
  };
  const requests: IncomingMessage[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'muster-topology-'));
    mkdirSync(join(dir, 'sa'));
    writeFileSync(join(dir, 'sa', 'token'), 'sa-token\n');
    server = createServer((req, res) => {
      requests.push(req);
      const m = /^\/api\/v1\/nodes\/([^/]+)$/.exec(req.url ?? '');
      const labels = m ? nodes[decodeURIComponent(m[1]!)] : undefined;
      if (req.headers.authorization !== 'Bearer sa-token') res.writeHead(401).end('unauthorized');
      else if (!labels) res.writeHead(404).end('{"kind":"Status","reason":"NotFound"}');
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Node', metadata: { name: m![1], labels } }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  const run = async (node: string) => {
    const out = join(dir, `${node}.json`);
    const { execa } = await import('execa');
    const r = await execa(process.execPath, [script], {
      reject: false,
      env: { NODE_NAME: node, MUSTER_KUBE_API: base, MUSTER_SA_DIR: join(dir, 'sa'), MUSTER_TOPOLOGY_OUT: out },
      extendEnv: false,
    });
    return { ...r, out };
  };

  it('hands zone, rack and NVLink clique to the worker through its config file', async () => {
    const r = await run('gpu-1');
    expect(r.exitCode, r.stderr).toBe(0);
    const config = loadWorkerConfig({ file: r.out, env: {} });
    expect(config.labels).toEqual({ 'muster.io/zone': 'us-east-1a', 'muster.io/rack': 'r12' });
    expect(config.nvlinkDomain).toBe('abc.3');
    expect(requests.at(-1)?.headers.authorization).toBe('Bearer sa-token');
  });

  it('prefers muster.io/ labels set on the node over mapped ones', async () => {
    const r = await run('gpu-2');
    expect(r.exitCode, r.stderr).toBe(0);
    const config = loadWorkerConfig({ file: r.out, env: {} });
    expect(config.labels).toEqual({ 'muster.io/zone': 'hall-2' });
    expect(config.nvlinkDomain).toBe('nvl72-a');
  });

  it('writes empty labels for a bare node, and fails loudly (no file) when the node cannot be read', async () => {
    const bare = await run('gpu-3');
    expect(JSON.parse(readFileSync(bare.out, 'utf8'))).toEqual({ labels: {} });
    const missing = await run('no-such-node');
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/HTTP 404/);
    expect(existsSync(missing.out)).toBe(false);
  });
});

describe('Dockerfile (deploy/docker/Dockerfile)', () => {
  const text = read('deploy/docker/Dockerfile').replace(/\\\n/g, ' ');
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages = new Map<string, string[]>();
  let current = '';
  for (const l of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(l);
    if (from) stages.set((current = from[2] ?? from[1]!), [l]);
    else stages.get(current)?.push(l);
  }

  it('copies only paths that exist in the repository', () => {
    for (const l of lines.filter((x) => /^COPY\s/.test(x) && !/--from=/.test(x))) {
      const parts = l.split(/\s+/).slice(1).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) expect(existsSync(join(repoRoot, src)), `${l}: ${src}`).toBe(true);
    }
    expect(read('deploy/docker/Dockerfile.dockerignore')).toMatch(/^\*\*\/node_modules$/m);
  });

  it.each(['head', 'worker'])('builds the %s stage from the lockfile, runs it as a non-root user, and starts the real CLI', (role) => {
    const stage = stages.get(role)!.join('\n');
    expect(stage).toMatch(/^USER\s+[1-9][0-9]*(:[1-9][0-9]*)?$/m);
    const bin = (JSON.parse(read(`packages/${role}/package.json`)) as { bin: Record<string, string> }).bin[`muster-${role}`]!;
    expect(stage).toContain(`"node", "/opt/muster/${role}/${bin.replace(/^\.\//, '')}"`);
    expect(stage).toContain(`COPY --from=build /out/${role} /opt/muster/${role}`);
    expect(text).toContain(`pnpm --filter @muster/${role} deploy --prod --legacy /out/${role}`);
    expect(text).toMatch(/pnpm install --offline --frozen-lockfile/);
    for (const env of stage.matchAll(/\b(MUSTER_[A-Z_]+)=/g)) expect(checkOptions(role === 'head' ? headOptions : workerOptions, [], [env[1]!])).toEqual([]);
  });

  it('is what the manifests run: images muster-head / muster-worker tagged with the package version', () => {
    for (const role of ['head', 'worker'] as const) {
      const version = (JSON.parse(read(`packages/${role}/package.json`)) as { version: string }).version;
      for (const name of overlays) {
        for (const c of cliContainers(renderOverlay(name).objects as Obj[], role)) expect(c.image).toBe(`muster-${role}:${version}`);
      }
    }
    expect(lines[0]).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/);
  });
});

describe('systemd units (deploy/systemd)', () => {
  /** Minimal INI: [Section] then Key=Value lines; repeated keys accumulate. */
  const ini = (file: string) => {
    const out: Record<string, Record<string, string[]>> = {};
    let section = '';
    for (const raw of read(file).split('\n')) {
      const l = raw.trim();
      if (!l || l.startsWith('#') || l.startsWith(';')) continue;
      const s = /^\[(.+)\]$/.exec(l);
      if (s) out[(section = s[1]!)] = {};
      else {
        const i = l.indexOf('=');
        ((out[section] ??= {})[l.slice(0, i)] ??= []).push(l.slice(i + 1));
      }
    }
    return out;
  };
  /** KEY=VALUE lines of an env file; commented-out assignments too when asked. */
  const envFile = (file: string, withComments = false) => Object.fromEntries(read(file).split('\n')
    .map((l) => (withComments ? l.replace(/^#(?=[A-Z_]+=)/, '') : l))
    .filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

  it.each([['head', headOptions], ['worker', workerOptions]] as const)('muster-%s.service starts the real CLI as its user (the head unprivileged, the worker root so its ranks are not), with options that exist', (role, options) => {
    const unit = ini(`deploy/systemd/muster-${role}.service`);
    const exec = unit.Service!.ExecStart![0]!.split(/\s+/);
    expect(exec.slice(0, 2)).toEqual(['/usr/bin/node', `/opt/muster/${role}/dist/main.js`]);
    const bin = (JSON.parse(read(`packages/${role}/package.json`)) as { bin: Record<string, string> }).bin[`muster-${role}`];
    expect(bin).toBe('./dist/main.js');
    let args = exec.slice(2);
    if (role === 'worker') {
      expect(args[0]).toBe('run');
      args = args.slice(1);
    }
    const flags = parseFlags(args);
    const envs = unit.Service!.EnvironmentFile!.map((f) => f.replace(/^-/, ''));
    expect(envs[0]).toBe(`/etc/muster/${role}.env`);
    const env = envFile(`deploy/systemd/${role}.env`, true);
    expect(checkOptions(options, flags, Object.keys(env))).toEqual([]);
    for (const k of Object.keys(env)) expect(SECRETISH.test(k) && !k.endsWith('_FILE'), `${role}.env: ${k} is a secret`).toBe(false);
    const config = role === 'head'
      ? loadHeadConfig({ env: envFile('deploy/systemd/head.env'), flags: flagsToKeys(options, flags) })
      : loadWorkerConfig({ env: envFile('deploy/systemd/worker.env', true), flags: flagsToKeys(options, flags) });
    expect(config).toBeDefined();
    expect(unit.Service!.User![0]).toBe(role === 'worker' ? 'root' : 'muster');
    expect(unit.Service!.KillSignal![0]).toBe('SIGTERM');
    expect(unit.Install!.WantedBy![0]).toBe('multi-user.target');
  });

  it('keeps the NATS password out of committed files, and points the head at the etcd it ships', () => {
    expect(read('deploy/systemd/nats-server.conf')).toMatch(/password:\s*\$MUSTER_NATS_PASSWORD\s/);
    expect(ini('deploy/systemd/nats-server.service.d/muster.conf').Service!.EnvironmentFile).toEqual(['/etc/muster/nats.env']);
    expect(ini('deploy/systemd/muster-head.service').Service!.EnvironmentFile).toContain('-/etc/muster/nats.env');
    const etcd = envFile('deploy/systemd/etcd.default');
    expect(envFile('deploy/systemd/head.env').MUSTER_ETCD_ENDPOINTS).toBe(etcd.ETCD_ADVERTISE_CLIENT_URLS);
  });

  it.skipIf(!has('etcd'))('etcd.default sets only settings the local etcd knows', () => {
    const help = output('etcd', ['--help']).text;
    for (const k of Object.keys(envFile('deploy/systemd/etcd.default'))) {
      expect(help, k).toContain(`--${k.replace(/^ETCD_/, '').toLowerCase().replace(/_/g, '-')} `);
    }
  });

  it.skipIf(!has('nats-server'))('nats-server.conf parses', () => {
    const r = output('nats-server', ['-t', '-c', join(repoRoot, 'deploy/systemd/nats-server.conf')], { MUSTER_NATS_PASSWORD: 'p' });
    expect(r.status, r.text).toBe(0);
  });

  it.skipIf(!has('systemd-analyze') || !existsSync('/usr/bin/node'))('systemd-analyze verify finds nothing to say about the units', () => {
    const units = ['muster-head.service', 'muster-worker.service'].map((u) => join(repoRoot, 'deploy/systemd', u));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...units], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l.includes(basename(units[0]!)) || l.includes(basename(units[1]!)))).toEqual([]);
  });
});

describe('docs/deploy.md', () => {
  const docs = read('docs/deploy.md');
  it('covers both overlays, the GPU node label, the render command, and says what was not tried', () => {
    for (const name of overlays) expect(docs).toContain(`deploy/kubernetes/rendered/${name}.yaml`);
    expect(docs).toContain('muster.io/worker=true');
    expect(docs).toContain('node deploy/render.mjs --write');
    expect(docs).toMatch(/^## What was and was not tried$/m);
    // The schema version the tests validate against, as the docs state it.
    const pkg = JSON.parse(read('test/node_modules/kubernetes-models/package.json')) as { version: string };
    expect(pkg.version).toBe('4.5.1');
    expect(docs).toContain('Kubernetes 1.33');
  });
});
