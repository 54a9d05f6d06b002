/**
 * The agent simulator's command line: thousands of agents speaking the real
 * agent protocol to a running head, from a few processes. Prints, once a
 * second, how many are registered, heartbeat round-trip lag and the
 * simulator's own CPU and memory.
 *
 *   pnpm build && npx tsx bench/agents/simulate.ts --head 127.0.0.1:7400 --token-file <file> \
 *     [--agents 10000] [--processes 2] [--profile hgx-h100-8] [--channels 8] \
 *     [--deaths-per-min 0] [--joins-per-min 0] [--storm-after 0 (s; 0: never)] [--duration 0 (s; 0: until Ctrl-C)]
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Fleet } from './fleet.js';

const { values: a } = parseArgs({
  options: {
    head: { type: 'string' },
    'token-file': { type: 'string' },
    agents: { type: 'string', default: '10000' },
    processes: { type: 'string', default: '2' },
    profile: { type: 'string', default: 'hgx-h100-8' },
    channels: { type: 'string' },
    'deaths-per-min': { type: 'string', default: '0' },
    'joins-per-min': { type: 'string', default: '0' },
    'storm-after': { type: 'string', default: '0' },
    duration: { type: 'string', default: '0' },
  },
  strict: true,
});
if (!a.head || !a['token-file']) throw new Error('simulate: --head and --token-file are required');
const num = (name: keyof typeof a): number => {
  const v = Number(a[name]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`simulate: --${name} must be a number ≥ 0, got ${String(a[name])}`);
  return v;
};
const churn = num('deaths-per-min') + num('joins-per-min') > 0 ? { deathsPerMin: num('deaths-per-min'), joinsPerMin: num('joins-per-min') } : undefined;
const fleet = Fleet.start({
  head: a.head,
  token: (await readFile(a['token-file'], 'utf8')).trim(),
  agents: num('agents'),
  processes: Math.max(1, num('processes')),
  profile: a.profile,
  ...(a.channels ? { channels: num('channels') } : {}),
  ...(churn ? { churn } : {}),
});
const t0 = Date.now();
const stormAfter = num('storm-after') * 1000;
let stormed = false;
const every = setInterval(() => {
  const s = fleet.stats();
  const t = (Date.now() - t0) / 1000;
  console.log(JSON.stringify({ t, ...s, pids: undefined }));
  if (stormAfter > 0 && !stormed && t * 1000 >= stormAfter) {
    stormed = true;
    console.log(JSON.stringify({ t, storm: 'every agent disconnects now' }));
    fleet.storm();
  }
  if (num('duration') > 0 && t >= num('duration')) void stop();
}, 1_000);
async function stop(): Promise<void> {
  clearInterval(every);
  await fleet.stop();
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
