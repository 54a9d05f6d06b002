#!/usr/bin/env node
// Generates the TypeScript of the wire contract from proto/ into src/gen/ with
// buf + ts-proto (both from npm, no network). With --check it generates into a
// temp dir and fails when src/gen differs, so CI catches stale generated code.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const buf = join(pkg, 'node_modules/.bin/buf');
const check = process.argv.includes('--check');

function generate(out) {
  execFileSync(buf, ['lint'], { cwd: pkg, stdio: 'inherit' });
  execFileSync(buf, ['generate', '--clean', '-o', out], { cwd: pkg, stdio: 'inherit' });
}

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

if (!check) {
  generate(pkg);
  console.log('generated packages/proto/src/gen');
} else {
  const tmp = mkdtempSync(join(tmpdir(), 'muster-gen-'));
  try {
    cpSync(join(pkg, 'buf.gen.yaml'), join(tmp, 'buf.gen.yaml'));
    generate(tmp);
    const fresh = join(tmp, 'src/gen');
    const committed = join(pkg, 'src/gen');
    const a = files(fresh).map((f) => relative(fresh, f)).sort();
    const b = files(committed).map((f) => relative(committed, f)).sort();
    const stale = [...new Set([...a, ...b])].filter(
      (f) => !a.includes(f) || !b.includes(f) ||
        readFileSync(join(fresh, f), 'utf8') !== readFileSync(join(committed, f), 'utf8'),
    );
    if (stale.length > 0) {
      console.error(`generated code is out of date: ${stale.join(', ')}\nrun: pnpm gen`);
      process.exit(1);
    }
    console.log('generated code is up to date');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
