// bench/call-cpu: the caller, one process per tree (BENCH_TREE: its packages/dataplane and common
// dist), so no tree's garbage or JIT state lands in another's counters. One Router, as the SDK's
// replica-group handle makes it (default limits: 32 per replica from the membership's default).
// Its rounds: rounds.mjs.
import { pathToFileURL } from 'node:url';
import { serveRounds } from './rounds.mjs';

const tree = process.env.BENCH_TREE;
const { Router } = await import(pathToFileURL(`${tree}/packages/dataplane/dist/index.js`).href);
const { connectNats } = await import(pathToFileURL(`${tree}/packages/common/dist/index.js`).href);
const { access, membership } = JSON.parse(process.env.BENCH_SETUP);
const nc = await connectNats(access, 'bench-call-cpu');
const router = new Router(nc, undefined, { group: membership.group, ...(access.inboxPrefix ? { inboxPrefix: access.inboxPrefix } : {}) });
router.update(membership);

await serveRounds((i) => router.call(i), async () => {
  router.close();
  await nc.close();
});
