/**
 * Layers point one way. This test reads every workspace package's
 * package.json and every import in packages/<p>/src (tests included) and
 * fails, naming the file, when an import goes against the table below, when
 * packages depend on each other in a cycle, or when modules of one package
 * import each other in a cycle.
 *
 *   proto, contracts  ←  common  ←  dataplane  ←  head, worker, sdk  ←  local  ←  testing, cli
 *
 * `dashboard` (the web app, a browser bundle) imports no package; the head
 * depends on it only to find its built files.
 *
 * A package may import the packages listed for it, nothing else (itself only
 * through relative paths). Nothing imports the test kit: only test/ and
 * bench/ may, and they (and examples/) import packages by name, never a
 * `packages/<p>/src` path. `contracts` and `dataplane` may not exist yet;
 * the table has them anyway.
 *
 * Imports are read with TypeScript's own pre-processor (`ts.preProcessFile`:
 * static imports, re-exports, `import type`, dynamic `import()`), not by a
 * regex. Module cycles are found by a depth-first search over the relative
 * imports of each package's non-test sources, `import type` included: a
 * type-only cycle still says two modules are one idea split in two.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

const below = {
  proto: [],
  dashboard: [],
  contracts: ['proto'],
  common: ['proto', 'contracts'],
  dataplane: ['proto', 'contracts', 'common'],
  head: ['proto', 'contracts', 'common', 'dataplane', 'dashboard'],
  worker: ['proto', 'contracts', 'common', 'dataplane'],
  sdk: ['proto', 'contracts', 'common', 'dataplane'],
  local: ['proto', 'contracts', 'common', 'dataplane', 'head', 'worker', 'sdk'],
  testing: ['proto', 'contracts', 'common', 'dataplane', 'head', 'worker', 'sdk', 'local'],
  cli: ['proto', 'contracts', 'common', 'dataplane', 'head', 'worker', 'sdk', 'local'],
} as const satisfies Record<string, readonly string[]>;
type Layer = keyof typeof below;
const isLayer = (p: string): p is Layer => Object.hasOwn(below, p);

/** Every .ts/.mts/.mjs file under `dir`, node_modules and dist skipped. */
function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'gen') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (/\.(ts|mts|mjs)$/.test(name) && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

const importsOf = (file: string): string[] =>
  ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.map((f) => f.fileName);

/** `@muster/<name>[/subpath]` → name; anything else → undefined. */
const musterPackage = (spec: string): string | undefined => /^@muster\/([^/]+)/.exec(spec)?.[1];


const packages = readdirSync(join(root, 'packages')).filter((p) => statSync(join(root, 'packages', p)).isDirectory());
const rel = (f: string) => relative(root, f);

/** Import violations of package `p`'s sources against the table (and of package.json dependencies). */
function layerViolations(p: string): string[] {
  if (!isLayer(p)) return [`packages/${p}: not in the layer table of test/unit/layers.test.ts (add it)`];
  const allowed = new Set<string>(below[p]);
  const out: string[] = [];
  const manifest = JSON.parse(readFileSync(join(root, 'packages', p, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
  for (const field of ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies']) {
    for (const dep of Object.keys(manifest[field] ?? {})) {
      const q = musterPackage(dep);
      if (q && !allowed.has(q)) {
        out.push(`packages/${p}/package.json: ${field} has @muster/${q}, which ${p} may not depend on`);
      }
    }
  }
  const srcDir = join(root, 'packages', p, 'src');
  for (const file of sources(srcDir)) {
    for (const spec of importsOf(file)) {
      const q = musterPackage(spec);
      if (q !== undefined && !allowed.has(q)) {
        out.push(`${rel(file)}: imports ${spec} (${p} may import ${[...allowed].join(', ') || 'no package'})`);
      }
      if (spec.startsWith('.') && !resolve(dirname(file), spec).startsWith(srcDir)) out.push(`${rel(file)}: imports ${spec}, outside its package (import the package instead)`);
    }
  }
  return out;
}

/** A cycle in `edges` (node → the nodes it imports), as the path that closes it; undefined when there is none. */
function findCycle(edges: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 'done') return undefined;
    if (state.get(n) === 'open') return [...path.slice(path.indexOf(n)), n];
    state.set(n, 'open');
    path.push(n);
    for (const m of edges.get(n) ?? []) {
      const cycle = visit(m);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(n, 'done');
    return undefined;
  };
  for (const n of [...edges.keys()].sort()) {
    const cycle = visit(n);
    if (cycle) return cycle;
  }
  return undefined;
}

/** Relative imports between the non-test modules of package `p`. */
function moduleGraph(p: string): Map<string, string[]> {
  const files = sources(join(root, 'packages', p, 'src')).filter((f) => !/\.test(-suite)?\.ts$/.test(f) && !f.includes('test-support'));
  const known = new Set(files);
  const edges = new Map<string, string[]>();
  for (const f of files) {
    const targets = importsOf(f)
      .filter((s) => s.startsWith('.'))
      .map((s) => resolve(dirname(f), s).replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts'))
      .filter((t) => known.has(t));
    edges.set(rel(f), targets.map(rel));
  }
  return edges;
}

describe('layers', () => {
  it.each(packages)('packages/%s imports only the layers below it', (p) => {
    expect(layerViolations(p)).toEqual([]);
  });

  it('no cycle between packages', () => {
    const edges = new Map<string, string[]>();
    for (const p of packages) {
      const manifest = JSON.parse(readFileSync(join(root, 'packages', p, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
      const deps = Object.keys({ ...manifest.dependencies, ...manifest.devDependencies }).map(musterPackage).filter((q): q is string => q !== undefined);
      edges.set(p, deps);
    }
    expect(findCycle(edges)).toBeUndefined();
  });

  it.each(packages)('no import cycle between the modules of packages/%s', (p) => {
    expect(findCycle(moduleGraph(p))).toBeUndefined();
  });

  it('test/, bench/ and examples/ import packages by name, never a packages/<p>/src path; examples never the test kit', () => {
    const out: string[] = [];
    for (const dir of ['test', 'bench', 'examples']) {
      for (const file of sources(join(root, dir))) {
        for (const spec of importsOf(file)) {
          if (/(^|\/)packages\/[^/]+\/src(\/|$)/.test(spec)) out.push(`${rel(file)}: imports ${spec}`);
          if (dir === 'examples' && musterPackage(spec) === 'testing') out.push(`${rel(file)}: an example imports the test kit`);
        }
      }
    }
    expect(out).toEqual([]);
  });

  it('the cycle finder finds a cycle and names it, and passes a graph without one', () => {
    expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]]))).toBeUndefined();
  });
});
