/**
 * Registration at scale with the agent simulator (bench/agents): one head
 * (embedded store, or etcd with --etcd), N simulated agents from P processes.
 * Measures, in one run:
 *   1. cold start: seconds until every agent is registered;
 *   2. steady state (15 s): head CPU (cores) and RSS, heartbeat round trip;
 *   3. node failure detection: a few agents die without a goodbye; ms until
 *      the head's node.dead event for each (SDK event stream);
 *   4. restart storm: the head is SIGKILLed and started again; seconds from
 *      the kill until every live agent is registered again.
 *      With --heads N (N ≥ 2, on etcd) a failover instead: the leader is
 *      SIGKILLed and not restarted; a standby wins the election and every
 *      live agent reconnects to it at once (the simulator follows the
 *      standbys' leader hints, as the real agent does). Measured from the
 *      kill: until the new leader says "became leader", and until every
 *      live agent is registered with it; then the new leader's CPU and RSS.
 *
 *   pnpm build && npx tsx bench/registration.ts [--agents 10000] [--processes 2] [--etcd] [--heads 1] [--deaths 5] [--cpu-prof <dir>] [--head-log <file>] [--skip-storm]
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { LocalCluster, procInfo, waitFor, type HeadHandle } from '@muster/testing';
import { Fleet } from './agents/fleet.js';

const { values: a } = parseArgs({
  options: { agents: { type: 'string', default: '10000' }, processes: { type: 'string', default: '2' }, etcd: { type: 'boolean', default: false }, heads: { type: 'string', default: '1' }, deaths: { type: 'string', default: '5' }, 'cpu-prof': { type: 'string' }, 'skip-storm': { type: 'boolean', default: false }, 'head-log': { type: 'string' } },
});
const agents = Number(a.agents);
const processes = Number(a.processes);
const heads = Number(a.heads);
if (!Number.isInteger(heads) || heads < 1) throw new Error(`--heads must be a whole number ≥ 1, got ${a.heads}`);
if (heads > 1 && !a.etcd) throw new Error('--heads 2 or more needs --etcd (heads elect a leader through etcd)');
// --cpu-prof <dir>: the head writes a V8 CPU profile there when it exits (open it in Chrome DevTools).
const headNodeArgs = a['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${a['cpu-prof']}`] : [];
const headLog = { stalls: 0, stalledMs: 0, warnings: 0, lastWarning: '' };
const cluster = await LocalCluster.start({
  workers: 0,
  heads,
  headNodeArgs,
  onLine: (name, line) => {
    if (a['head-log']) appendFileSync(a['head-log'], `${name} ${line}\n`);
    const m = /"stalledMs":(\d+)/.exec(line);
    if (m) {
      headLog.stalls++;
      headLog.stalledMs += Number(m[1]);
    } else if (line.includes('"level":40') || line.includes('"level":50')) {
      headLog.warnings++;
      headLog.lastWarning = line.slice(0, 300);
    }
  },
  ...(a.etcd ? { store: 'etcd' as const } : {}) });
const token = readFileSync(cluster.tokenFile, 'utf8').trim();

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1] ?? 0) / 1024);
}
const cpuMs = (pid: number) => procInfo(pid)?.cpuMs ?? 0;
const log = (o: object) => console.log(JSON.stringify(o));

const fleet = Fleet.start({ head: cluster.address, token, tlsCa: cluster.tls?.ca, agents, processes });
const result: Record<string, unknown> = { bench: 'registration', agents, processes, heads, store: a.etcd ? 'etcd' : 'embedded' };
/** CPU (cores) and RSS of one head over `ms`. */
async function usage(h: HeadHandle, ms: number): Promise<{ headCores: number; headRssMiB: number }> {
  const pid = h.process.pid;
  const c0 = cpuMs(pid);
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  return { headCores: Math.round(((cpuMs(pid) - c0) / (performance.now() - w0)) * 100) / 100, headRssMiB: rssMiB(pid) };
}
try {
  // 1. Cold start.
  let t0 = performance.now();
  await waitFor('every agent registered', () => {
    const s = fleet.stats();
    log({ phase: 'cold', t: Math.round(performance.now() - t0) / 1000, registered: s.registered, refusals: s.refusals, simTickLateMs: s.tickLateMs, simCpu: s.cpu, dropped: s.dropped, head: headLog, headCpuMs: cpuMs(cluster.head.process.pid) });
    return s.registered === agents;
  }, { timeoutMs: 300_000, intervalMs: 1_000 });
  result.coldStartS = Math.round(performance.now() - t0) / 1000;

  // 2. Steady state (of the leader; a standby's RSS beside it: its state mirror holds every key).
  const leader = heads > 1 ? await cluster.waitForLeader() : cluster.head;
  await new Promise((r) => setTimeout(r, 3_000));
  fleet.stats();
  const steady = await usage(leader, 15_000);
  const s = fleet.stats();
  const standby = cluster.heads.find((h) => h !== leader);
  result.steady = { ...steady, ...(standby ? { standbyRssMiB: rssMiB(standby.process.pid) } : {}), simCores: s.cpu, simRssMiB: s.rssMiB, hbLagP50Ms: s.lagP50, hbLagP99Ms: s.lagP99 };
  log(result.steady as object);

  // 3. Failure detection: kill a few agents; time until node.dead arrives for each.
  const sdk = await cluster.connect();
  const dead = new Map<string, number>();
  const stop = new AbortController();
  let live = false;
  const watching = (async () => {
    for await (const e of sdk.events({ replay: false, signal: stop.signal, kinds: ['node.dead'] })) {
      live = true;
      if (e.nodeId) dead.set(e.nodeId, Date.now());
    }
  })().catch(() => undefined);
  await new Promise((r) => setTimeout(r, 1_000)); // the watch is open (a live stream sends nothing until an event)
  const perProcess = Math.max(1, Math.round(Number(a.deaths) / processes));
  const killedAt = Date.now();
  fleet.kill(perProcess);
  await waitFor('killed ids', () => fleet.killedIds.length === perProcess * processes, { timeoutMs: 5_000 });
  await waitFor('node.dead for every killed agent', () => fleet.killedIds.every((id) => dead.has(id)), { timeoutMs: 30_000 });
  const detect = fleet.killedIds.map((id) => dead.get(id)! - killedAt).sort((x, y) => x - y);
  result.failureDetection = { killed: detect.length, medianMs: detect[Math.floor(detect.length / 2)], maxMs: detect.at(-1), live };
  log(result.failureDetection as object);
  stop.abort();
  await watching;
  sdk.close();

  // 4a. Failover: SIGKILL the leader; a standby takes over and every live agent reconnects to it.
  const alive = agents - detect.length;
  if (heads > 1 && !a['skip-storm']) {
    const before = fleet.stats().registrations;
    t0 = performance.now();
    await cluster.stopHead(leader.index, 'SIGKILL');
    const next = await cluster.waitForLeader({ not: leader, timeoutMs: 60_000 });
    result.failoverElectedS = Math.round(performance.now() - t0) / 1000;
    // Every live agent registered again (registrations count each agent's registrations; only the new leader accepts).
    await waitFor('every live agent registered with the new leader', () => {
      const st = fleet.stats();
      log({ phase: 'failover', t: Math.round(performance.now() - t0) / 1000, registered: st.registered, again: st.registrations - before, refusals: st.refusals, dropped: st.dropped });
      return st.registered === alive && st.registrations - before >= alive;
    }, { timeoutMs: 300_000, intervalMs: 1_000 });
    result.failoverS = Math.round(performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 3_000));
    result.afterFailover = await usage(next, 10_000);
    log(result.afterFailover as object);
  }

  // 4b. Restart storm (one head): SIGKILL the head, start it again; every live agent reconnects at once.
  if (heads === 1 && !a['skip-storm']) {
  t0 = performance.now();
  await cluster.stopHead(0, 'SIGKILL');
  await waitFor('agents notice', () => fleet.stats().registered < alive, { timeoutMs: 30_000, intervalMs: 200 });
  await cluster.startHead(0);
  await waitFor('every live agent registered again', () => {
    const st = fleet.stats();
    log({ phase: 'storm', t: Math.round(performance.now() - t0) / 1000, registered: st.registered, refusals: st.refusals });
    return st.registered === alive;
  }, { timeoutMs: 300_000, intervalMs: 1_000 });
  result.restartStormS = Math.round(performance.now() - t0) / 1000;
  result.afterStorm = { headRssMiB: rssMiB(cluster.head.process.pid) };
  }
} finally {
  result.loadavg = loadavg().map((x) => Math.round(x * 100) / 100);
  result.machine = `${cpus().length}× ${cpus()[0]?.model}`;
  console.log(JSON.stringify(result));
  await fleet.stop();
  await cluster.stop();
}
