/**
 * The compressed 30-day soak, one command (issue 15, point 10; see soak.ts
 * for the churn). Prints one JSON line per interval (store keys and bytes,
 * head RSS, p99 GetClusterInfo latency, churn so far), then the verdict, and
 * exits 1 if store keys, store bytes, RSS or p99 grew beyond the tolerance
 * after warm-up (the peak of the later half of the samples against the peak
 * of the earlier half: bounded state saw-tooths, see judge in soak.ts), or
 * if some kind of churn did not happen. RSS gets an absolute
 * slack on top (--rss-slack-mib, default 64 MiB): V8 grows and shrinks its
 * heap in steps of tens of MiB with no leak behind them. p99 gets one too
 * (--p99-slack-ms, default 50): on a shared 2-core machine a neighbour's
 * burst preempts the head for tens of ms. Store keys and bytes get none.
 * The embedded data dir's files are checked against a cap instead (the log
 * is cut at the 64 MiB snapshot threshold, so they saw-tooth).
 *
 *   pnpm build && npx tsx bench/soak/run.ts --store embedded|etcd --minutes 30 [--interval-s 60] [--warmup-s 120]
 *     [--gangs 4] [--agents 200] [--node-churn 120] [--failing-replicas 2] [--workers 2]
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { runSoak } from './soak.js';

const { values: a } = parseArgs({
  options: {
    store: { type: 'string', default: 'embedded' },
    minutes: { type: 'string', default: '30' },
    'interval-s': { type: 'string', default: '60' },
    'warmup-s': { type: 'string' },
    gangs: { type: 'string', default: '4' },
    agents: { type: 'string', default: '200' },
    'node-churn': { type: 'string', default: '120' },
    'failing-replicas': { type: 'string', default: '2' },
    workers: { type: 'string', default: '2' },
    tolerance: { type: 'string', default: '0.1' },
    'rss-slack-mib': { type: 'string', default: '64' },
    'p99-slack-ms': { type: 'string', default: '50' },
  },
});
if (a.store !== 'embedded' && a.store !== 'etcd') throw new Error(`--store must be embedded or etcd, not ${a.store}`);
const durationMs = Number(a.minutes) * 60_000;
const intervalMs = Number(a['interval-s']) * 1_000;
const result = await runSoak({
  store: a.store,
  durationMs,
  intervalMs,
  // Default warm-up: 2 minutes, or a fifth of a short run.
  warmupMs: a['warmup-s'] !== undefined ? Number(a['warmup-s']) * 1_000 : Math.min(120_000, durationMs / 5),
  gangConcurrency: Number(a.gangs),
  agents: Number(a.agents),
  nodeChurnPerMin: Number(a['node-churn']),
  failingReplicas: Number(a['failing-replicas']),
  workers: Number(a.workers),
  tolerance: Number(a.tolerance),
  rssSlackMiB: Number(a['rss-slack-mib']),
  p99SlackMs: Number(a['p99-slack-ms']),
  log: (line) => console.log(line),
});
console.log(JSON.stringify({
  bench: 'soak', store: a.store, minutes: Number(a.minutes), ok: result.ok, churned: result.churned, verdicts: result.verdicts,
  loadavg: loadavg().map((x) => Math.round(x * 100) / 100), machine: `${cpus().length}× ${cpus()[0]?.model}`,
}));
process.exit(result.ok ? 0 : 1);
