// bench/call-cpu: one no-op replica (serve(), default limits, answers null) built from the tree in
// BENCH_TREE (its packages/dataplane/dist), configured like a replica-group shard from MUSTER_*
// variables (NATS credentials in the environment, never argv); says "ready" over IPC.
import { pathToFileURL } from 'node:url';

const { serve } = await import(pathToFileURL(`${process.env.BENCH_TREE}/packages/dataplane/dist/index.js`).href);
const server = await serve({ unary: () => null });
process.send?.('ready');
const stop = () => void server.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('disconnect', stop);
