/**
 * Shared by the deploy tests (chart.test.ts, deploy.test.ts): the shapes of the
 * Kubernetes objects we ship (the fields the checks read), the Kubernetes and
 * cert-manager schema models, our CLIs' flags and env, and the real helm: the
 * chart is rendered by `helm template` at the version scripts/helm.sh pins
 * (built once from the Go module proxy, then cached), never by a renderer of ours.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as certManager from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import * as apps from 'kubernetes-models/apps/v1';
import * as core from 'kubernetes-models/v1';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import * as policy from 'kubernetes-models/policy/v1';
import * as rbac from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import YAML from 'yaml';
import type { OptionSpec } from '@muster/common';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const chartDir = join(repoRoot, 'deploy/helm/muster');

// ---- shapes of the objects we ship (the fields the checks read) ----
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string }; configMapKeyRef?: unknown };
}
export interface Probe { httpGet?: { path: string; port: number | string }; tcpSocket?: { port: number | string } }
export interface SecurityContext {
  runAsUser?: number; runAsGroup?: number; runAsNonRoot?: boolean; fsGroup?: number; allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
}
export interface Container {
  name: string; image: string; command?: string[]; args?: string[]; env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: Probe; readinessProbe?: Probe; startupProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; subPath?: string }[];
  securityContext?: SecurityContext;
}
export interface Volume {
  name: string;
  secret?: { secretName: string; defaultMode?: number; items?: { key: string; path: string }[] };
  configMap?: { name: string };
  projected?: { defaultMode?: number; sources: { configMap?: { name: string }; serviceAccountToken?: unknown }[] };
}
export interface Toleration { key?: string; operator?: string; effect?: string }
export interface PodSpec {
  containers: Container[]; initContainers?: Container[]; volumes?: Volume[]; serviceAccountName?: string;
  hostNetwork?: boolean; dnsPolicy?: string; runtimeClassName?: string; nodeSelector?: Record<string, string>;
  tolerations?: Toleration[]; securityContext?: SecurityContext;
  affinity?: {
    nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: { matchFields?: { key: string; operator: string; values: string[] }[] }[] } };
    podAntiAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } }[] };
  };
}
export interface Spec {
  replicas?: number; serviceName?: string; podManagementPolicy?: string; strategy?: { type: string };
  selector?: { matchLabels?: Record<string, string> } & Record<string, string>;
  template?: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  ports?: { name: string; port: number; targetPort?: number | string }[];
  clusterIP?: string; publishNotReadyAddresses?: boolean; minAvailable?: number; maxUnavailable?: number;
  volumeClaimTemplates?: { metadata: { name: string } }[];
  // cert-manager
  secretName?: string; commonName?: string; isCA?: boolean; dnsNames?: string[]; usages?: string[];
  subject?: { organizations?: string[] }; issuerRef?: { name: string; kind: string }; ca?: { secretName: string };
  privateKey?: { algorithm?: string; size?: number };
}
export interface Obj {
  apiVersion: string; kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Spec; data?: Record<string, string>; subjects?: { kind: string; name: string; namespace: string }[];
}

export const read = (rel: string) => readFileSync(join(repoRoot, rel), 'utf8');
export const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
/** stdout + stderr of a local binary (help texts go to either). */
export const output = (bin: string, args: string[], env?: NodeJS.ProcessEnv) => {
  const r = spawnSync(bin, args, { encoding: 'utf8', env: env ? { ...process.env, ...env } : process.env });
  return { status: r.status, text: `${r.stdout}${r.stderr}` };
};
export const workloads = (objs: Obj[]) => objs.filter((o) => o.spec?.template);
export const podSpec = (o: Obj) => o.spec!.template!.spec;
export const allContainers = (p: PodSpec) => [...(p.initContainers ?? []), ...p.containers];
export const find = (objs: Obj[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`${kind}/${name} is not rendered`);
  return o;
};
/** `registry/name:tag` → its parts (a port in the registry is not a tag). */
export function parseImage(image: string): { name: string; tag?: string } {
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return colon > slash ? { name: image.slice(0, colon), tag: image.slice(colon + 1) } : { name: image };
}
/** muster-head / muster-worker CLI containers (not the topology script, which overrides the command). */
export const cliContainers = (objs: Obj[], role: 'head' | 'worker') =>
  workloads(objs).flatMap((o) => podSpec(o).containers).filter((c) => parseImage(c.image).name.endsWith(`muster-${role}`) && !c.command);
export const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

// ---- schema models, by apiVersion/kind ----
export type Model = { apiVersion: string; kind: string; prototype: { validate(): void }; new (data: unknown): { validate(): void } };
export const MODELS = new Map<string, Model>();
for (const ns of [core, apps, rbac, policy, networking, certManager] as Record<string, unknown>[]) {
  for (const v of Object.values(ns)) {
    const m = v as Model;
    if (typeof v === 'function' && typeof m.apiVersion === 'string' && typeof m.kind === 'string') MODELS.set(`${m.apiVersion}/${m.kind}`, m);
  }
}

/** Paths of `obj` that the schema's validator never reads: fields the schema does not know. */
export function unknownFields(model: Model, obj: unknown): string[] {
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
export function parseFlags(args: string[]): { flag: string; value: string }[] {
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
export function checkOptions(options: OptionSpec[], flags: { flag: string }[], envNames: string[]): string[] {
  const known = new Set(['config', ...options.map((o) => o.flag)]);
  const knownEnv = new Set([...EXTRA_ENV, ...options.map((o) => o.env)]);
  return [
    ...flags.filter((f) => !known.has(f.flag)).map((f) => `unknown flag --${f.flag}`),
    ...envNames.filter((e) => e.startsWith('MUSTER_') && !knownEnv.has(e)).map((e) => `unknown env ${e}`),
  ];
}
export const flagsToKeys = (options: OptionSpec[], flags: { flag: string; value: string }[]) =>
  Object.fromEntries(flags.filter((f) => f.flag !== 'config').map((f) => [options.find((o) => o.flag === f.flag)!.key, f.value]));

/** A container's environment as the kubelet would build it (downward API and secrets as placeholders). */
export function containerEnv(objs: Obj[], c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) if (from.configMapRef) Object.assign(env, find(objs, 'ConfigMap', from.configMapRef.name).data);
  const fields: Record<string, string> = { 'spec.nodeName': 'gpu-node-1', 'status.hostIP': '10.0.0.21', 'metadata.name': 'pod-0', 'metadata.namespace': 'muster' };
  for (const e of c.env ?? []) {
    const raw = e.value ?? (e.valueFrom?.fieldRef ? fields[e.valueFrom.fieldRef.fieldPath] ?? 'x' : 'secret-placeholder');
    // $(VAR) of a variable defined before it, as the kubelet expands it.
    env[e.name] = raw.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);
  }
  return env;
}

export const SECRETISH = /PASSWORD|SECRET|TOKEN$|CREDENTIAL|SEED/i;

// ---- the real helm ----
let helmBin: string | undefined;
/** The pinned helm (scripts/helm.sh builds it on first use, minutes; then instant). */
export function helmPath(): string {
  if (helmBin) return helmBin;
  const r = spawnSync('bash', [join(repoRoot, 'scripts/helm.sh')], { encoding: 'utf8', timeout: 20 * 60_000 });
  if (r.status !== 0) throw new Error(`the chart tests need helm, and scripts/helm.sh could not provide it (exit ${r.status}):\n${r.stderr}`);
  return (helmBin = r.stdout.trim());
}
export function helm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(helmPath(), args, { encoding: 'utf8', cwd: chartDir });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What the tests render: values files relative to the chart (ci/ holds test-only values). */
export const VARIANTS: Record<string, string[]> = {
  default: ['ci/test-values.yaml'],
  'cert-manager': ['ci/test-values.yaml', 'ci/cert-manager-values.yaml'],
  dev: ['ci/test-values.yaml', 'values-dev.yaml'],
};
export const RELEASE = 'muster';
export const NAMESPACE = 'muster';
/** The Kubernetes version the chart is rendered for, and the schemas are of (kubernetes-models 4.5.1). */
export const KUBE_VERSION = '1.33.0';

/** `helm template` with these values files and extra args: the objects, or helm's error. */
export function render(files: string[], extra: string[] = []): { status: number | null; objects: Obj[]; stderr: string } {
  const r = helm(['template', RELEASE, '.', '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION, ...files.flatMap((f) => ['-f', f]), ...extra]);
  if (r.status !== 0) return { status: r.status, objects: [], stderr: r.stderr };
  const objects: Obj[] = [];
  for (const doc of YAML.parseAllDocuments(r.stdout, { uniqueKeys: true })) {
    if (doc.errors.length > 0) throw new Error(`helm template printed invalid YAML: ${doc.errors[0]!.message}`);
    const o = doc.toJS() as Obj | null;
    if (o) objects.push(o);
  }
  return { status: r.status, objects, stderr: r.stderr };
}

// ---- who mounts what ----
/** The mounts of container `c` of workload `o` that show Secret `secret`. */
export const mounts = (o: Obj, c: Container, secret: string) => {
  const vols = (podSpec(o).volumes ?? []).filter((v) => v.secret?.secretName === secret).map((v) => v.name);
  return (c.volumeMounts ?? []).filter((m) => vols.includes(m.name));
};
/** Every container that mounts Secret `secret`, as "<workload>/<container>". */
export const mountedBy = (objects: Obj[], secret: string) =>
  workloads(objects).flatMap((o) => allContainers(podSpec(o)).filter((c) => mounts(o, c, secret).length > 0).map((c) => `${o.metadata.name}/${c.name}`));
/** The workers' DaemonSets, one per node. */
export const workerSets = (objects: Obj[]) => objects.filter((o) => o.kind === 'DaemonSet' && o.metadata.name.startsWith('muster-worker-'));
/** The node a worker DaemonSet runs on. */
export const nodeOf = (ds: Obj) => ds.metadata.annotations!['muster.io/node']!;
