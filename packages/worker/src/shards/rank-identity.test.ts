/**
 * The supervisor runs ranks as their gang's user (rank-users.ts,
 * rank-homes.ts) and keeps its own files private: the data dir 0700 (even
 * one made wider before), shards.json and rank logs 0600. As root, each
 * gang's ranks run under a uid of its own (read from /proc, not from what
 * the rank says), in a home of their own (cwd and HOME, 0700, owned by that
 * uid), and exec probes run under the rank's uid too (a probe program the
 * rank can rewrite must never run as root). The root-only tests are skipped
 * elsewhere, saying so.
 */
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '@muster/common';
import { Harness, node } from './test-support.js';
import { prepareHome, sweepHomes } from './rank-homes.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) process.stderr.write('rank-identity: root-only tests skipped: not running as root\n');

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.cleanup();
  rmSync(`${h.dataDir}-homes`, { recursive: true, force: true });
});

const mode = (path: string): number => statSync(path).mode & 0o777;
const uidOf = (pid: number): number => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

describe('the worker\'s own files', () => {
  it('makes the data dir 0700 (also one that was wider), and shards.json and rank logs 0600', async () => {
    chmodSync(h.dataDir, 0o755);
    const sup = await h.open();
    expect(mode(h.dataDir)).toBe(0o700);
    const spec = h.spec(node('console.log("hi"); setInterval(() => {}, 1 << 30)'));
    sup.launch(spec);
    const started = await h.status(spec.key, 'started');
    expect(mode(join(h.dataDir, 'shards.json'))).toBe(0o600);
    expect(mode(started.logFile!)).toBe(0o600);
    await sup.stop(spec.key);
  });
});

describe('sweepHomes', () => {
  it('deletes a gang\'s home only once no rank of it runs, its logs are gone and no process runs as its owner', () => {
    const root = `${h.dataDir}-homes`;
    const logs = join(h.dataDir, 'logs');
    for (const g of ['running', 'logged', 'over']) prepareHome(root, g, undefined);
    mkdirSync(join(logs, 'logged', '1'), { recursive: true });
    // Homes owned by the worker itself (ranks run as the worker) are not asked about: the worker runs, always.
    expect(sweepHomes(root, logs, new Set(['running']), () => true)).toEqual(['over']);
    expect(readdirSync(root).sort()).toEqual(['logged', 'running']);
    if (isRoot) {
      prepareHome(root, 'other', { uid: 310_077, gid: 310_077 });
      expect(sweepHomes(root, logs, new Set(['running']), (uid) => uid === 310_077)).toEqual([]); // a process still runs as its owner
      expect(sweepHomes(root, logs, new Set(['running']), () => false)).toEqual(['other']);
    }
  });

  it('looks at the gangs it is given (the supervisor\'s index) and reports one whose home is already gone, so the index drops it', () => {
    const root = `${h.dataDir}-homes`;
    const logs = join(h.dataDir, 'logs');
    prepareHome(root, 'listed', undefined);
    prepareHome(root, 'unlisted', undefined);
    expect(sweepHomes(root, logs, new Set(), () => false, ['listed', 'vanished'])).toEqual(['listed', 'vanished']);
    expect(readdirSync(root)).toEqual(['unlisted']); // not named: not looked at
  });
});

describe.skipIf(!isRoot)('ranks under their gang\'s uid (as root)', () => {
  const policy = { kind: 'per-gang', first: 310_000, last: 310_099 } as const;

  it('runs two gangs under two uids, each in its own 0700 home as cwd and HOME, with exec probes under the rank\'s uid', async () => {
    const homeRoot = `${h.dataDir}-homes`;
    const sup = await h.open({ ranks: { policy, homeRoot } });
    // The probe writes the uid it runs as into the rank's home; passing means it could write there.
    const probe = { kind: 'exec' as const, command: process.execPath, args: ['-e', 'require("fs").writeFileSync("probe-uid", String(process.getuid()))'], periodMs: 50 };
    const report = node('console.log(JSON.stringify({ cwd: process.cwd(), home: process.env.HOME })); setInterval(() => {}, 1 << 30)');
    const a = h.spec({ ...report, readiness: probe });
    const b = h.spec({ ...report });
    sup.launch(a);
    sup.launch(b);
    const readyA = await h.status(a.key, 'ready');
    const readyB = await h.status(b.key, 'ready');
    const uidA = uidOf(readyA.pid!);
    const uidB = uidOf(readyB.pid!);
    expect(uidA).toBeGreaterThanOrEqual(policy.first);
    expect(uidB).toBeGreaterThanOrEqual(policy.first);
    expect(uidA).not.toBe(uidB);
    for (const [spec, uid] of [[a, uidA], [b, uidB]] as const) {
      const home = join(homeRoot, spec.gangId);
      expect({ mode: mode(home), owner: statSync(home).uid }).toEqual({ mode: 0o700, owner: uid });
    }
    expect(mode(homeRoot)).toBe(0o711);
    const homeA = join(homeRoot, a.gangId);
    expect(readFileSync(join(homeA, 'probe-uid'), 'utf8')).toBe(String(uidA));
    const line = await waitFor('rank a to print its cwd and HOME', () => h.log(readyA).split('\n').find((l) => l.startsWith('{')), { timeoutMs: 5_000, intervalMs: 20 });
    expect(JSON.parse(line)).toEqual({ cwd: homeA, home: homeA });
    await sup.stopGang(a.gangId);
    await sup.stopGang(b.gangId);
  });

  it('a spec\'s own cwd and HOME win over the home', async () => {
    const sup = await h.open({ ranks: { policy, homeRoot: `${h.dataDir}-homes` } });
    const spec = h.spec({ ...node('console.log(JSON.stringify({ cwd: process.cwd(), home: process.env.HOME }))'), cwd: '/', env: { HOME: '/nonexistent' } });
    sup.launch(spec);
    const exited = await h.status(spec.key, 'exited');
    expect(JSON.parse(h.log(exited))).toEqual({ cwd: '/', home: '/nonexistent' });
  });

  it('a home left by another uid is replaced by a fresh one for the new uid', () => {
    const root = `${h.dataDir}-homes`;
    mkdirSync(join(root, 'g'), { recursive: true });
    const home = prepareHome(root, 'g', { uid: 310_050, gid: 310_050 });
    expect(statSync(home).uid).toBe(310_050);
    const again = prepareHome(root, 'g', { uid: 310_051, gid: 310_051 });
    expect({ owner: statSync(again).uid, mode: mode(again) }).toEqual({ owner: 310_051, mode: 0o700 });
  });
});
