/**
 * CPU per data-plane call, on each side: the caller (Router.call, as the
 * SDK's replica-group handle makes it), the two no-op replicas (serve()) and
 * nats-server, read from /proc/<pid>/stat (utime + stime) around each round
 * of calls kept `inflight` deep. Issue 19 point 3 asks the SDK call to reach
 * 0.8× the raw NATS floor's calls/s on a 2-core machine, where every process
 * shares the same cores: calls/s there is bounded by the CPU each call costs
 * in all four processes, which is what this prints, per process.
 *
 *   npx tsx bench/call-cpu/run.ts [--trees /work/main,.] [--calls 40000] [--inflight 64] [--rounds 4] [--floor] [--seq 2000] [--prof DIR]
 *
 * `--trees`: built checkouts to compare (their packages/*\/dist), each with
 * its own caller process and two replica processes on one nats-server (TLS,
 * operator mode, a caller user and a replica user as a cluster mints them).
 * Rounds alternate between the trees (A, B, A, B…), so each sees the same
 * moments of a shared machine. Each round also times `--seq` calls made one
 * at a time (p50: the latency shape of bench/peers) before the calls in flight. `--floor` adds the raw NATS request/reply
 * floor (floor.mjs: bench/peers' floor, its caller and two responders in
 * processes of their own) as one more side. Prints one line per round and a JSON summary
 * of medians, with the load average at start and end. `--prof DIR`: callers
 * and replicas run under `node --cpu-prof` and leave their profiles in DIR.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, platform, release } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { callerInboxPrefix, callerPermissions, DEFAULT_SUBJECT_PREFIX, natsCredentialEnv, replicaPermissions, replicaSubject, SHARD_ENV } from '@muster/contracts';
import { startNats, tempDir } from '@muster/testing';

const { values: a } = parseArgs({
  options: {
    trees: { type: 'string', default: '.' },
    calls: { type: 'string', default: '40000' },
    inflight: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '4' },
    prof: { type: 'string' },
    floor: { type: 'boolean', default: false },
    seq: { type: 'string', default: '2000' },
  },
});
const trees = a.trees.split(',').filter(Boolean).map((t) => resolve(t));
const [calls, inflight, rounds, seq] = [a.calls, a.inflight, a.rounds, a.seq].map(Number) as [number, number, number, number];
const here = fileURLToPath(new URL('.', import.meta.url));
/** The children's node flags: none (not this process's tsx loader), or the CPU profiler's. */
const execArgv = a.prof ? ['--cpu-prof', '--cpu-prof-dir', resolve(a.prof)] : [];
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ: 100 on Linux). */
const TICK_US = 10_000;

/** utime + stime of a process, in µs. */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_US; // fields 14 and 15 of the whole line
}

/** read and write system calls of a process so far (/proc/<pid>/io): how well its I/O is batched. */
function syscallsOf(pid: number): { r: number; w: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return { r: Number(/syscr: (\d+)/.exec(io)?.[1]), w: Number(/syscw: (\d+)/.exec(io)?.[1]) };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const ready = (p: ChildProcess) => new Promise<void>((ok, fail) => {
  p.once('message', () => ok());
  p.once('exit', (code) => fail(new Error(`child exited with ${code} before it was ready`)));
});

interface Row { p50: number; caller: number; callerProc: number; replicas: number; nats: number; rate: number; callerReads: number; callerWrites: number; replicaReads: number; replicaWrites: number }

const dir = await tempDir('muster-bench-cpu-');
const nats = await startNats({ dir: dir.path });
const children: ChildProcess[] = [];
try {
  const load = [loadavg()[0]!];
  const sides = [];
  for (const [t, tree] of trees.entries()) {
    const group = `cpu${t}`;
    const replicas = [];
    for (const id of ['r0', 'r1']) {
      const subject = replicaSubject(DEFAULT_SUBJECT_PREFIX, group, id);
      const user = nats.mint(`replica ${group}`, replicaPermissions(DEFAULT_SUBJECT_PREFIX, group));
      const env = { ...process.env, ...natsCredentialEnv({ servers: [nats.url], jwt: user.jwt, seed: user.seed, caPem: user.caPem }), BENCH_TREE: tree, [SHARD_ENV.GROUP]: group, [SHARD_ENV.REPLICA_ID]: id, [SHARD_ENV.SUBJECT]: subject };
      const p = fork(`${here}replica.mjs`, { env, execArgv });
      children.push(p);
      await ready(p);
      replicas.push({ pid: p.pid!, info: { replicaId: id, revision: 'r1', subject } });
    }
    const inbox = callerInboxPrefix(`cpu${t}`);
    const access = nats.mint(`caller ${group}`, callerPermissions(DEFAULT_SUBJECT_PREFIX, [group], inbox));
    const membership = { group, version: 1, replicas: replicas.map((r) => r.info) };
    const caller = fork(`${here}caller.mjs`, { env: { ...process.env, BENCH_TREE: tree, BENCH_SETUP: JSON.stringify({ access, membership }) }, execArgv });
    children.push(caller);
    await ready(caller);
    console.log(`${tree}: caller pid ${caller.pid}, replica pids ${replicas.map((r) => r.pid).join(' ')}`);
    sides.push({ tree, caller, replicaPids: replicas.map((r) => r.pid), rows: [] as Row[] });
  }
  if (a.floor) {
    const tree = trees[trees.length - 1]!;
    const env = (role: string) => ({ env: { ...process.env, BENCH_TREE: tree, BENCH_ACCESS: JSON.stringify(nats.access), BENCH_ROLE: role }, execArgv });
    const responders = [fork(`${here}floor.mjs`, env('responder')), fork(`${here}floor.mjs`, env('responder'))];
    children.push(...responders);
    await Promise.all(responders.map(ready));
    const caller = fork(`${here}floor.mjs`, env('caller'));
    children.push(caller);
    await ready(caller);
    console.log(`floor: caller pid ${caller.pid}, responder pids ${responders.map((p) => p.pid).join(' ')}`);
    sides.push({ tree: 'NATS floor', caller, replicaPids: responders.map((p) => p.pid!), rows: [] as Row[] });
  }
  const natsPid = nats.process.pid;
  for (let r = 0; r < rounds; r++) {
    for (const s of sides) {
      const p50 = seq > 0 ? await new Promise<number>((ok) => (s.caller.once('message', (m: { p50Ms: number }) => ok(m.p50Ms)), s.caller.send({ seq }))) : NaN;
      const before = { caller: cpuOf(s.caller.pid!), replicas: s.replicaPids.map(cpuOf), nats: cpuOf(natsPid), io: syscallsOf(s.caller.pid!), replicaIo: s.replicaPids.map(syscallsOf) };
      const done = new Promise<{ cpuUs: number; wallMs: number }>((ok) => s.caller.once('message', ok));
      s.caller.send({ calls, inflight });
      const res = await done;
      const row = {
        caller: res.cpuUs / calls,
        callerProc: (cpuOf(s.caller.pid!) - before.caller) / calls,
        replicas: s.replicaPids.reduce((sum, pid, i) => sum + cpuOf(pid) - before.replicas[i]!, 0) / calls,
        nats: (cpuOf(natsPid) - before.nats) / calls,
        rate: Math.round(calls / (res.wallMs / 1_000)),
        p50,
        // System calls per call: the caller's reads and writes, the replicas' (summed).
        callerReads: (syscallsOf(s.caller.pid!).r - before.io.r) / calls,
        callerWrites: (syscallsOf(s.caller.pid!).w - before.io.w) / calls,
        replicaReads: s.replicaPids.reduce((sum, pid, i) => sum + syscallsOf(pid).r - before.replicaIo[i]!.r, 0) / calls,
        replicaWrites: s.replicaPids.reduce((sum, pid, i) => sum + syscallsOf(pid).w - before.replicaIo[i]!.w, 0) / calls,
      };
      s.rows.push(row);
      const f = (x: number) => x.toFixed(1).padStart(5);
      const g = (x: number) => x.toFixed(2);
      console.log(`round ${r + 1} ${s.tree}: µs per call: caller ${f(row.caller)} (/proc ${f(row.callerProc)}), replicas ${f(row.replicas)}, nats-server ${f(row.nats)}; ${row.rate} calls/s, p50 one at a time ${row.p50.toFixed(3)} ms; syscalls per call: caller r ${g(row.callerReads)} w ${g(row.callerWrites)}, replicas r ${g(row.replicaReads)} w ${g(row.replicaWrites)}; load ${loadavg()[0]!.toFixed(2)}`);
    }
  }
  load.push(loadavg()[0]!);
  const summary = sides.map((s) => ({
    tree: s.tree,
    callerUs: median(s.rows.map((x) => x.caller)),
    callerProcUs: median(s.rows.map((x) => x.callerProc)),
    replicasUs: median(s.rows.map((x) => x.replicas)),
    natsUs: median(s.rows.map((x) => x.nats)),
    callsPerSec: median(s.rows.map((x) => x.rate)),
    p50Ms: median(s.rows.map((x) => x.p50)),
  }));
  console.log(JSON.stringify({ bench: 'call-cpu', command: `npx tsx bench/call-cpu/run.ts ${process.argv.slice(2).join(' ')}`.trim(), machine: `${cpus().length}× ${cpus()[0]?.model}, ${platform()} ${release()}, node ${process.version}`, calls, inflight, rounds, seq, loadavg: load, summary }));
  // Callers and replicas exit by themselves (process.exit: a --cpu-prof profile is written then).
  await Promise.all(sides.map((s) => new Promise((ok) => (s.caller.once('exit', ok), s.caller.send('stop')))));
  await Promise.all(children.filter((p) => p.exitCode === null).map((p) => new Promise((ok) => (p.once('exit', ok), p.kill('SIGTERM')))));
} finally {
  for (const p of children) if (p.exitCode === null) p.kill('SIGTERM');
  await nats.stop();
  await dir.remove();
}
