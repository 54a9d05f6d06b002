#!/usr/bin/env node
/**
 * Renders the Kubernetes manifests: deploy/kubernetes/overlays/<name> → one
 * multi-document YAML, byte-identical for identical inputs.
 *
 *   node deploy/render.mjs dev           print the dev overlay
 *   node deploy/render.mjs --write       refresh deploy/kubernetes/rendered/<overlay>.yaml
 *   node deploy/render.mjs --check       exit 1 if a rendered file is stale
 *   node deploy/render.mjs path/to/dir   render any directory holding a kustomization.yaml
 *
 * The inputs are kustomization.yaml files restricted to a subset of
 * kustomize whose behaviour is exactly specified, so this renderer and
 * `kubectl apply -k` should agree (that was not tried; the rendered files
 * are what the tests check):
 *
 *   resources          files (multi-document YAML) and directories (other kustomizations)
 *   configMapGenerator `files` / `literals`, only with options.disableNameSuffixHash: true
 *   patches            RFC 6902 JSON patches with a `target` (kind, name, optional namespace)
 *   images             newName / newTag / digest for containers and init containers
 *
 * Anything else in a kustomization is an error, not silently ignored. Output:
 * objects in apply order (kind, then namespace, then name), keys sorted
 * (see `canonical`).
 */
import { existsSync, readFileSync, statSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// `yaml` is a dependency of the test workspace package (deploy/ is not a
// package of its own), and the version the tests use.
const require = createRequire(new URL('../test/package.json', import.meta.url));
const YAML = require('yaml');

export const deployDir = dirname(fileURLToPath(import.meta.url));
export const repoRoot = dirname(deployDir);
export const kubernetesDir = join(deployDir, 'kubernetes');
export const overlaysDir = join(kubernetesDir, 'overlays');
export const renderedDir = join(kubernetesDir, 'rendered');

const KUSTOMIZATION_KEYS = new Set(['apiVersion', 'kind', 'resources', 'configMapGenerator', 'patches', 'images']);

/** Apply order: what others depend on first (the namespace before anything in it). */
const KIND_ORDER = [
  'Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding',
  'ConfigMap', 'Service', 'NetworkPolicy', 'PodDisruptionBudget', 'StatefulSet', 'Deployment', 'DaemonSet',
];

export class RenderError extends Error {}

/** Names of the overlays under deploy/kubernetes/overlays, sorted. */
export function overlayNames() {
  return readdirSync(overlaysDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(overlaysDir, d.name, 'kustomization.yaml')))
    .map((d) => d.name)
    .sort();
}

export function renderedPath(overlay) {
  return join(renderedDir, `${overlay}.yaml`);
}

/** Renders one overlay by name: `{ objects, yaml }`. */
export function renderOverlay(name) {
  const dir = join(overlaysDir, name);
  if (!existsSync(join(dir, 'kustomization.yaml'))) throw new RenderError(`no overlay "${name}" (known: ${overlayNames().join(', ')})`);
  return renderDir(dir, `deploy/kubernetes/overlays/${name}`);
}

/** Renders the kustomization in `dir`. */
export function renderDir(dir, label = relative(repoRoot, resolve(dir))) {
  const objects = sortObjects(build(resolve(dir), []));
  const header = `# Rendered by deploy/render.mjs from ${label}. Do not edit: change the sources and run\n# \`node deploy/render.mjs --write\`.\n`;
  const docs = objects.map((o) => YAML.stringify(o, { lineWidth: 0, indentSeq: true, aliasDuplicateObjects: false }));
  return { objects, yaml: header + docs.map((d) => `---\n${d}`).join('') };
}

function build(dir, stack) {
  if (stack.includes(dir)) throw new RenderError(`kustomization cycle: ${[...stack, dir].map((d) => relative(repoRoot, d)).join(' → ')}`);
  const file = join(dir, 'kustomization.yaml');
  const where = relative(repoRoot, file);
  const k = parseOne(readFileSync(file, 'utf8'), where) ?? {};
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_KEYS.has(key)) throw new RenderError(`${where}: "${key}" is not supported by deploy/render.mjs (supported: ${[...KUSTOMIZATION_KEYS].join(', ')})`);
  }
  const objects = [];
  for (const entry of list(k.resources, `${where}: resources`)) {
    const path = resolve(dir, entry);
    if (!existsSync(path)) throw new RenderError(`${where}: resource ${entry} does not exist`);
    if (statSync(path).isDirectory()) objects.push(...build(path, [...stack, dir]));
    else objects.push(...parseAll(readFileSync(path, 'utf8'), relative(repoRoot, path)));
  }
  for (const gen of list(k.configMapGenerator, `${where}: configMapGenerator`)) objects.push(generateConfigMap(dir, gen, where));
  checkUnique(objects, where);
  for (const [i, p] of list(k.patches, `${where}: patches`).entries()) applyPatchEntry(dir, objects, p, `${where}: patches[${i}]`);
  for (const img of list(k.images, `${where}: images`)) setImage(objects, img, where);
  return objects;
}

function list(v, what) {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new RenderError(`${what}: expected a list`);
  return v;
}

function parseOne(text, where) {
  const doc = YAML.parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw new RenderError(`${where}: ${doc.errors[0].message}`);
  return doc.toJS();
}

function parseAll(text, where) {
  const out = [];
  for (const doc of YAML.parseAllDocuments(text, { uniqueKeys: true })) {
    if (doc.errors.length > 0) throw new RenderError(`${where}: ${doc.errors[0].message}`);
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    if (typeof obj !== 'object' || Array.isArray(obj) || !obj.apiVersion || !obj.kind || !obj.metadata?.name) {
      throw new RenderError(`${where}: every document must be an object with apiVersion, kind and metadata.name`);
    }
    out.push(obj);
  }
  return out;
}

function idOf(o) {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

function checkUnique(objects, where) {
  const seen = new Set();
  for (const o of objects) {
    const id = idOf(o);
    if (seen.has(id)) throw new RenderError(`${where}: ${id} is defined twice`);
    seen.add(id);
  }
}

function generateConfigMap(dir, gen, where) {
  const known = new Set(['name', 'namespace', 'files', 'literals', 'options']);
  for (const key of Object.keys(gen)) if (!known.has(key)) throw new RenderError(`${where}: configMapGenerator.${key} is not supported`);
  if (gen.options?.disableNameSuffixHash !== true) {
    throw new RenderError(`${where}: configMapGenerator ${gen.name} needs options.disableNameSuffixHash: true (the renderer does not compute kustomize's name hash)`);
  }
  const data = {};
  for (const f of list(gen.files, `${where}: files`)) {
    const [key, path] = f.includes('=') ? [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] : [basename(f), f];
    data[key] = readFileSync(resolve(dir, path), 'utf8');
  }
  for (const l of list(gen.literals, `${where}: literals`)) {
    const i = l.indexOf('=');
    if (i < 1) throw new RenderError(`${where}: literal "${l}" is not key=value`);
    data[l.slice(0, i)] = l.slice(i + 1);
  }
  const metadata = { name: gen.name };
  if (gen.namespace) metadata.namespace = gen.namespace;
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata, data };
}

function applyPatchEntry(dir, objects, entry, where) {
  const target = entry.target;
  if (!target?.kind || !target?.name) throw new RenderError(`${where}: a patch needs target.kind and target.name`);
  for (const key of Object.keys(target)) {
    if (!['group', 'version', 'kind', 'name', 'namespace'].includes(key)) throw new RenderError(`${where}: target.${key} is not supported`);
  }
  const text = entry.path !== undefined ? readFileSync(resolve(dir, entry.path), 'utf8') : entry.patch;
  if (typeof text !== 'string') throw new RenderError(`${where}: a patch needs path or patch`);
  const ops = parseOne(text, entry.path ? `${where} (${entry.path})` : where);
  if (!Array.isArray(ops)) throw new RenderError(`${where}: only JSON 6902 patches (a list of operations) are supported`);
  const matches = objects.filter((o) => {
    const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
    return o.kind === target.kind && o.metadata.name === target.name
      && (target.namespace === undefined || o.metadata.namespace === target.namespace)
      && (target.group === undefined || group === target.group)
      && (target.version === undefined || version === target.version);
  });
  if (matches.length === 0) throw new RenderError(`${where}: target ${target.kind}/${target.name} matches no object`);
  for (const o of matches) {
    const patched = applyJsonPatch(o, ops, `${where} on ${idOf(o)}`);
    for (const key of Object.keys(o)) delete o[key];
    Object.assign(o, patched);
  }
}

/**
 * RFC 6902 JSON patch (add, remove, replace, move, copy, test) on a copy of
 * `doc`; an operation that cannot apply (missing path, failed test) throws.
 */
export function applyJsonPatch(doc, ops, where = 'patch') {
  let root = clone(doc);
  for (const [i, op] of ops.entries()) {
    const at = `${where}: op ${i} (${op?.op} ${op?.path})`;
    if (typeof op?.path !== 'string') throw new RenderError(`${at}: missing path`);
    switch (op.op) {
      case 'add': root = addAt(root, op.path, clone(valueOf(op, at)), at); break;
      case 'remove': root = removeAt(root, op.path, at).root; break;
      case 'replace': root = addAt(removeAt(root, op.path, at).root, op.path, clone(valueOf(op, at)), at); break;
      case 'move': {
        const r = removeAt(root, fromOf(op, at), at);
        root = addAt(r.root, op.path, r.value, at);
        break;
      }
      case 'copy': root = addAt(root, op.path, clone(getAt(root, fromOf(op, at), at)), at); break;
      case 'test': {
        if (!deepEqual(getAt(root, op.path, at), valueOf(op, at))) throw new RenderError(`${at}: test failed`);
        break;
      }
      default: throw new RenderError(`${at}: unknown op`);
    }
  }
  return root;
}

function valueOf(op, at) {
  if (!('value' in op)) throw new RenderError(`${at}: missing value`);
  return op.value;
}

function fromOf(op, at) {
  if (typeof op.from !== 'string') throw new RenderError(`${at}: missing from`);
  return op.from;
}

function pointer(path, at) {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new RenderError(`${at}: a JSON pointer starts with "/"`);
  return path.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(arr, token, at, allowEnd) {
  if (allowEnd && token === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new RenderError(`${at}: "${token}" is not an array index`);
  const i = Number(token);
  if (i > arr.length || (!allowEnd && i === arr.length)) throw new RenderError(`${at}: index ${i} is out of range`);
  return i;
}

function parentOf(root, tokens, at) {
  let node = root;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(node)) node = node[arrayIndex(node, t, at, false)];
    else if (node !== null && typeof node === 'object' && Object.hasOwn(node, t)) node = node[t];
    else throw new RenderError(`${at}: path does not exist`);
  }
  if (node === null || typeof node !== 'object') throw new RenderError(`${at}: path does not exist`);
  return node;
}

function getAt(root, path, at) {
  const tokens = pointer(path, at);
  if (tokens.length === 0) return root;
  const parent = parentOf(root, tokens, at);
  const last = tokens.at(-1);
  if (Array.isArray(parent)) return parent[arrayIndex(parent, last, at, false)];
  if (!Object.hasOwn(parent, last)) throw new RenderError(`${at}: path does not exist`);
  return parent[last];
}

function addAt(root, path, value, at) {
  const tokens = pointer(path, at);
  if (tokens.length === 0) return value;
  const parent = parentOf(root, tokens, at);
  const last = tokens.at(-1);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, at, true), 0, value);
  else parent[last] = value;
  return root;
}

function removeAt(root, path, at) {
  const tokens = pointer(path, at);
  if (tokens.length === 0) return { root: undefined, value: root };
  const parent = parentOf(root, tokens, at);
  const last = tokens.at(-1);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, last, at, false);
    return { root, value: parent.splice(i, 1)[0] };
  }
  if (!Object.hasOwn(parent, last)) throw new RenderError(`${at}: path does not exist`);
  const value = parent[last];
  delete parent[last];
  return { root, value };
}

function clone(v) {
  return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
}

function deepEqual(a, b) {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

/** kustomize's `images` transformer for pod templates. */
function setImage(objects, img, where) {
  if (!img?.name) throw new RenderError(`${where}: images entries need a name`);
  let used = false;
  for (const o of objects) {
    const spec = o.spec?.template?.spec;
    if (!spec) continue;
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
      const ref = parseImage(c.image);
      if (ref.name !== img.name) continue;
      used = true;
      const name = img.newName ?? ref.name;
      if (img.digest) c.image = `${name}@${img.digest}`;
      else if (img.newTag) c.image = `${name}:${img.newTag}`;
      else c.image = `${name}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
    }
  }
  if (!used) throw new RenderError(`${where}: image ${img.name} is used by no container`);
}

/** "registry:5000/a/b:tag@sha256:..." → { name, tag, digest } */
export function parseImage(image) {
  let rest = image;
  let digest;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  return { name: rest, tag, digest };
}

function sortObjects(objects) {
  const rank = (k) => (KIND_ORDER.includes(k) ? KIND_ORDER.indexOf(k) : KIND_ORDER.length);
  const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  return objects
    .map((o) => canonical(o))
    .sort((a, b) => rank(a.kind) - rank(b.kind) || cmp(a.kind, b.kind)
      || cmp(a.metadata.namespace ?? '', b.metadata.namespace ?? '') || cmp(a.metadata.name, b.metadata.name));
}

const TOP = ['apiVersion', 'kind', 'metadata'];

/**
 * A copy with every mapping's keys in one fixed order: at the top
 * "apiVersion", "kind", "metadata"; below, "name"; then alphabetical.
 */
export function canonical(v, depth = 0) {
  if (Array.isArray(v)) return v.map((x) => canonical(x, depth + 1));
  if (v === null || typeof v !== 'object') return v;
  const first = depth === 0 ? TOP : ['name'];
  const rank = (k) => (first.includes(k) ? first.indexOf(k) : first.length);
  const keys = Object.keys(v).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(keys.map((k) => [k, canonical(v[k], depth + 1)]));
}

/** Rendered files that differ from a fresh render: [{ overlay, path }]. */
export function staleRendered() {
  const stale = [];
  for (const name of overlayNames()) {
    const path = renderedPath(name);
    const current = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
    if (current !== renderOverlay(name).yaml) stale.push({ overlay: name, path });
  }
  return stale;
}

function main(argv) {
  if (argv.includes('--write')) {
    mkdirSync(renderedDir, { recursive: true });
    for (const name of overlayNames()) {
      writeFileSync(renderedPath(name), renderOverlay(name).yaml);
      console.log(`wrote ${relative(process.cwd(), renderedPath(name))}`);
    }
    return 0;
  }
  if (argv.includes('--check')) {
    const stale = staleRendered();
    for (const s of stale) console.error(`stale: ${relative(process.cwd(), s.path)} (run node deploy/render.mjs --write)`);
    return stale.length === 0 ? 0 : 1;
  }
  if (argv.length !== 1 || argv[0].startsWith('-')) {
    console.error(`usage: node deploy/render.mjs <overlay | dir> | --write | --check\noverlays: ${overlayNames().join(', ')}`);
    return 2;
  }
  const arg = argv[0];
  const isDir = existsSync(arg) && statSync(arg).isDirectory();
  process.stdout.write(isDir ? renderDir(arg).yaml : renderOverlay(arg).yaml);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof RenderError)) throw e;
    console.error(`render: ${e.message}`);
    process.exitCode = 1;
  }
}
