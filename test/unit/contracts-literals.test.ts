/**
 * One home per contract: a NATS subject or a cross-process variable name is
 * spelled in @muster/contracts and imported everywhere else. This test reads
 * every source file of the packages, the examples and the benchmarks and
 * fails, naming file:line, where one is spelled as a literal:
 *
 *  - a shard-contract variable (every MUSTER_* value of SHARD_ENV, the
 *    MUSTER_PORT_ prefix included) or a client variable (CLIENT_ENV);
 *  - a data-plane subject being built: `.rg.`, `.load.` or `.demand.` in a
 *    string or template literal (`${prefix}.load.>`).
 *
 * It reads the TypeScript syntax tree, not the text: a literal or identifier
 * that *is* a name (`'MUSTER_GROUP'`, `env.MUSTER_GROUP`, `{ MUSTER_GROUP: … }`,
 * `` `MUSTER_PORT_${name}` ``) is code spelling it; comments and messages for
 * people that mention a name (`"MUSTER_TP_RANK=3 is out of range"`) are not. Tests (`*.test.ts`,
 * test/, test fixtures) are not read: they check the contract from the
 * outside, so spelling a name there is the point. Neither is the test kit
 * (packages/testing), which reads ranks' environments from /proc to check
 * the contract the same way. Error codes (MUSTER_NOT_LEADER …) are not
 * variables and are not looked for.
 *
 * One exception: a process's own flag table (`{ key, flag, env: 'MUSTER_…' }`
 * in a config.ts) defines that process's configuration variable once; the
 * head's NATS flags and the worker's token flags share a name with the shard
 * and client contracts, and the table is their one definition.
 *
 * The self-test at the end proves the scanner sees what it should.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { CLIENT_ENV, SHARD_ENV } from '@muster/contracts';

const root = join(import.meta.dirname, '..', '..');

/** Names that cross a process boundary: those a literal may not spell. */
const NAMES = [...new Set([...Object.values(SHARD_ENV), ...Object.values(CLIENT_ENV)].filter((n) => n.startsWith('MUSTER_')))];
const NAME = new RegExp(`^(${NAMES.map((n) => n.replace(/_$/, '_[A-Z0-9_]*')).join('|')})$`);
const SUBJECT = /\.(rg|load|demand)(\.|$)/;

/** Sources to read: packages/<pkg>/src (not the test kit), examples/<ex>/src, bench/. */
function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'dist' && e.name !== 'gen' && e.name !== 'test-fixtures' && e.name !== 'results') walk(p);
      } else if (/\.(ts|mts|mjs)$/.test(e.name) && !/\.test\.[mc]?[jt]s$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
    }
  };
  const dirs = (parent: string) => readdirSync(join(root, parent), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  for (const pkg of dirs('packages')) if (pkg !== 'contracts' && pkg !== 'testing') walk(join(root, 'packages', pkg, 'src'));
  for (const ex of dirs('examples')) if (existsSync(join(root, 'examples', ex, 'src'))) walk(join(root, 'examples', ex, 'src')); // an example may be a spec file and a README only
  walk(join(root, 'bench'));
  return out;
}

/** `env: 'MUSTER_X'` as a property of an object that also has a `flag`: a flag table entry. */
function isFlagTableEnv(node: ts.Node): boolean {
  const prop = node.parent;
  if (!prop || !ts.isPropertyAssignment(prop) || prop.name.getText() !== 'env' || !ts.isObjectLiteralExpression(prop.parent)) return false;
  return prop.parent.properties.some((p) => p.name?.getText() === 'flag');
}

export interface Finding {
  line: number;
  text: string;
  why: string;
}

/** Literals of one source text that spell a contract name or build a subject. */
export function findLiterals(fileName: string, text: string): Finding[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const found: Finding[] = [];
  const report = (node: ts.Node, why: string) => found.push({ line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1, text: node.getText(sf).slice(0, 80), why });
  const visit = (node: ts.Node): void => {
    let value: string | undefined;
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateHead(node) || ts.isTemplateMiddle(node) || ts.isTemplateTail(node)) value = node.text;
    else if (ts.isIdentifier(node) || ts.isPrivateIdentifier(node)) value = node.text; // env.MUSTER_X, { MUSTER_X: … }
    if (value !== undefined) {
      const name = NAME.exec(value)?.[1];
      if (name && !isFlagTableEnv(node)) report(node, `${name} is a contract name: import it from @muster/contracts (SHARD_ENV / CLIENT_ENV)`);
      else if (!ts.isIdentifier(node) && SUBJECT.test(value)) report(node, 'builds a NATS subject: use the subject functions of @muster/contracts');
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

describe('contract names have one home', () => {
  it('no source outside @muster/contracts spells a shard/client variable or builds a subject', () => {
    const files = sourceFiles();
    expect(files.length).toBeGreaterThan(50); // the walk found the sources
    const problems = files.flatMap((f) => findLiterals(f, readFileSync(f, 'utf8')).map((x) => `${relative(root, f)}:${x.line}: ${x.text}  — ${x.why}`));
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('@muster/contracts stays pure: it imports nothing but its own modules', () => {
    const dir = join(root, 'packages', 'contracts', 'src');
    const imports = readdirSync(dir)
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
      .flatMap((f) => [...readFileSync(join(dir, f), 'utf8').matchAll(/^import .* from '([^']+)';$/gm)].map((m) => `${f}: ${m[1]}`));
    expect(imports.filter((i) => !/: \.\/[a-z-]+\.js$/.test(i))).toEqual([]);
  });

  it('sees names in strings, templates, property access and keys, and subjects in templates; not in comments or flag tables', () => {
    const src = [
      '// MUSTER_TP_RANK in a comment is documentation; so is `${x} breaks MUSTER_TP_RANK=${y}` in a message',
      "const a = process.env.MUSTER_TP_RANK;",
      "const b = env['MUSTER_GROUP'];",
      'const c = { MUSTER_SUBJECT: s };',
      'const d = `MUSTER_PORT_${name}`;',
      "const e = process.env['MUSTER_PORT_HTTP'];",
      'const f = `${prefix}.load.>`;',
      'const g = `${prefix}.rg.${group}.${id}`;',
      "const h = { key: 'natsUrl', flag: 'nats-url', env: 'MUSTER_NATS_URL' };",
      "const i = { code: 'MUSTER_NOT_LEADER', event: 'rg.autoscale', rg: x.rg.name };",
      "const j = process.env.MUSTER_ADDRESS;",
      'const k = `${rank} is out of range for MUSTER_TP_SIZE=${size}`;',
    ].join('\n');
    expect(findLiterals('self.ts', src).map((x) => x.line)).toEqual([2, 3, 4, 5, 6, 7, 8, 11]);
  });
});
