/**
 * What the trace hooks cost with tracing off, per data-plane call: the
 * checks a call makes when no tracer provider is registered (the router's
 * `callerContext()` at call creation and the replica's `tracingOn()` per
 * request, plus the `endSpan(undefined)` of each end), measured in a tight
 * loop against an empty loop. The end-to-end SDK call p50 before/after is
 * bench/dataplane.ts (docs/benchmarks.md, "Traces off"); on a loaded 2-core
 * machine its noise is larger than this cost, which this bench shows
 * directly.
 *
 *   npx tsx bench/trace-off.ts [--n 20000000] [--runs 5]
 *
 * Prints one JSON line: ns per call of the hooks, the median of the runs.
 */
import { cpus, platform, release } from 'node:os';
import { parseArgs } from 'node:util';
import { endSpan, otelContext, tracingOn } from '@muster/common';

const { values: a } = parseArgs({ options: { n: { type: 'string', default: '20000000' }, runs: { type: 'string', default: '5' } } });
const n = Number(a.n);
const runs = Number(a.runs);

/** One call's hooks with tracing off: router (call created, attempt ended), replica (request arrived, ended). */
function hooks(): number {
  const ctx = tracingOn() ? otelContext.active() : undefined; // router: callerContext()
  const serve = tracingOn() ? 1 : 0; // replica: before startServeSpan
  endSpan(undefined, 'OK'); // replica: finish()
  return (ctx ? 1 : 0) + serve;
}

function loop(body: () => number): number {
  let sink = 0;
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink += body();
  const ns = Number(process.hrtime.bigint() - t);
  if (sink < 0) console.log(sink);
  return ns / n;
}

const empty = () => 0;
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
if (tracingOn()) throw new Error('a tracer provider is registered: this bench measures tracing off');
loop(hooks);
loop(empty);
const withHooks: number[] = [];
const baseline: number[] = [];
for (let r = 0; r < runs; r++) {
  withHooks.push(loop(hooks));
  baseline.push(loop(empty));
}
const round = (x: number) => Math.round(x * 100) / 100;
console.log(JSON.stringify({
  bench: 'trace-off',
  command: `npx tsx bench/trace-off.ts ${process.argv.slice(2).join(' ')}`.trim(),
  machine: `${cpus().length}× ${cpus()[0]?.model}, ${platform()} ${release()}, node ${process.version}`,
  iterations: n,
  runs,
  hooksNsPerCall: round(median(withHooks) - median(baseline)),
  perRun: withHooks.map((h, i) => ({ hooksNs: round(h), emptyNs: round(baseline[i]!) })),
}));
