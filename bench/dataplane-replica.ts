/**
 * The no-op replica of bench/dataplane.ts, in its own process so that client
 * and server never share an event loop. Configured like a real replica-group
 * shard, from MUSTER_* variables; says "ready" over IPC.
 */
import { serve } from '@muster/dataplane';

const server = await serve({ unary: () => null }, { maxConcurrent: Number(process.env.BENCH_MAX_CONCURRENT ?? 1_024) });
process.send?.('ready');
const stop = () => void server.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('disconnect', stop); // the bench went away
