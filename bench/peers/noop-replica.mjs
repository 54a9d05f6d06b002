// bench/peers: the no-op replica of a replica group (the Muster side of the call-latency and
// HTTP shapes). Rank 0 answers every call with null through the SDK's serve(), the same handler
// semantics as the Ray Serve deployment in ray_peers.py; every rank reports ready.
import { serve, shard } from '@muster/sdk';

const env = shard.env();
const server = env.rank === 0 ? await serve({ unary: () => null }) : undefined;
shard.ready();
const keepAlive = setInterval(() => {}, 60_000);
process.on('SIGTERM', async () => {
  await server?.drain();
  clearInterval(keepAlive);
  process.exit(0);
});
