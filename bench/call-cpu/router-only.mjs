// bench/call-cpu: the router's own CPU per call, without NATS or another process — what
// Router.call (and the answer's way back: inbox, decode, settle) costs in JS, the part of a
// caller's CPU per call Muster owns. A fake connection answers each request in a microtask with a
// no-op replica's encoded answer; 64 calls in flight, as run.ts. For each tree given (built
// checkouts: their packages/dataplane and common dist), 200,000 warm-up calls, then 5 rounds of
// 500,000, printing µs of CPU per call (process.cpuUsage: user + system, GC included).
//
//   node bench/call-cpu/router-only.mjs /work/main .      (trees alternate: A, B, A, B)
import { fork } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

if (!process.env.BENCH_TREE) {
  // One process per tree and run, so no tree's garbage or JIT state lands in another's numbers.
  const trees = process.argv.slice(2).map((t) => resolve(t));
  for (const tree of [...trees, ...trees]) {
    await new Promise((ok) => fork(new URL(import.meta.url), { env: { ...process.env, BENCH_TREE: tree }, execArgv: [] }).once('exit', ok));
  }
} else {
  const tree = process.env.BENCH_TREE;
  const { Router } = await import(pathToFileURL(`${tree}/packages/dataplane/dist/index.js`).href);
  const { encode } = await import(pathToFileURL(`${tree}/packages/common/dist/index.js`).href);
  const ANSWER = encode({ v: 1, ok: true, result: null });
  let inbox;
  const nc = {
    info: { max_payload: 1 << 20 },
    isClosed: () => false,
    getServer: () => 'none',
    status: () => ({ [Symbol.asyncIterator]: () => ({ next: () => new Promise(() => {}) }), stop() {} }),
    subscribe(subject, opts) {
      if (subject.endsWith('*')) inbox = opts.callback;
      return { isClosed: () => false, unsubscribe() {} };
    },
    publish(_subject, _data, opts) {
      if (!opts?.reply) return;
      const msg = { subject: opts.reply, data: ANSWER, headers: undefined };
      void Promise.resolve().then(() => inbox(null, msg));
    },
  };
  const router = new Router(nc, undefined, { group: 'g' });
  router.update({ group: 'g', version: 1, replicas: ['a', 'b'].map((id) => ({ replicaId: id, revision: 'r', subject: `fake-${id}` })) });
  const run = async (n, width) => {
    let next = 0;
    await Promise.all(Array.from({ length: width }, async () => {
      while (next < n) await router.call(next++);
    }));
  };
  await run(200_000, 64);
  const rows = [];
  for (let r = 0; r < 5; r++) {
    const cpu = process.cpuUsage();
    await run(500_000, 64);
    const d = process.cpuUsage(cpu);
    rows.push(((d.user + d.system) / 500_000).toFixed(2));
  }
  console.log(`${tree}: µs of CPU per call, 5 rounds: ${rows.join(' · ')}`);
  router.close();
}
