/**
 * One rank of a TP×PP gang: the process Muster launches WORLD_SIZE times.
 *
 *   start line ─▶ check env ─▶ HTTP (503) ─▶ peer listener ─▶ rendezvous
 *     ─▶ mesh ─▶ forward pass ─▶ result (last stage) ─▶ ready ─▶ … SIGTERM ─▶ exit 0
 *
 * Output is JSON lines on stdout ("start", "result", "ready", "stop") and one
 * JSON "error" line on stderr before a non-zero exit:
 *   exit 2  the environment contract is broken (a variable, or ranks that
 *           disagree about the gang): fix the launcher, retrying won't help;
 *   exit 1  anything else: a timeout, a lost peer, a wrong answer.
 *
 * Flags: --seed N (default: MODEL_SEED from the environment, else 1234; all
 * ranks must agree), --timeout-ms N (for
 * the rendezvous and each wait on a peer; default 30000), and --reference
 * [--layers N] to print the single-process answer and exit.
 */
import { SHARD_ENV } from '@muster/contracts';
import { parseArgs } from 'node:util';
import { EnvError, bindHost, httpBindHost, parseShardEnv, rawContract, type ShardEnv } from './env.js';
import { startHttp, type RankState } from './http.js';
import { Mesh, PeerListener } from './mesh.js';
import {
  BATCH,
  DEFAULT_SEED,
  D_MODEL,
  TOLERANCE,
  addResidual,
  inputBatch,
  layerWeights,
  maxAbsDiff,
  partialForward,
  reference,
  shardLayer,
  stageLayers,
  totalLayers,
} from './model.js';
import { LayoutError, helloOf, rendezvous, startRendezvousServer } from './rendezvous.js';

const t0 = performance.now();
const elapsed = (): number => Math.round(performance.now() - t0);
const emit = (line: object): void => void process.stdout.write(JSON.stringify(line) + '\n');

function die(code: number, rank: string, e: unknown): never {
  const variable = e instanceof EnvError || e instanceof LayoutError ? e.variable : undefined;
  const message = `rank ${rank}: ${e instanceof Error ? e.message : String(e)}`;
  process.stderr.write(JSON.stringify({ muster: 'error', rank: Number(rank), variable, message }) + '\n');
  process.exit(code);
}

function intFlag(value: string | undefined, label: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) die(2, process.env['RANK'] ?? '?', new Error(`${label}="${value}" is not a non-negative integer`));
  return Number(value);
}

/**
 * This stage's share of the forward pass: take the activation (the input on
 * stage 0, else from the previous stage), run our layers (one all-reduce of
 * the MLP branch each, then the residual add on every TP rank), pass the
 * activation on. Returns the last activation this rank holds.
 */
async function forward(env: ShardEnv, mesh: Mesh, seed: number): Promise<Float64Array> {
  const { first, count } = stageLayers(env.ppRank);
  // Only this rank's slices are kept; the full layer is generated once and dropped.
  const shards = Array.from({ length: count }, (_, i) => shardLayer(layerWeights(seed, first + i), env.tpRank, env.tpSize));
  let x = mesh.prevStage === null ? inputBatch(seed) : await mesh.recv(mesh.prevStage, 'activation', BATCH * D_MODEL);
  for (const [i, shard] of shards.entries()) {
    x = addResidual(x, await mesh.allReduce(`layer ${first + i}`, partialForward(x, BATCH, shard)));
  }
  if (mesh.nextStage !== null) mesh.send(mesh.nextStage, 'activation', x);
  return x;
}

async function main(): Promise<void> {
  let flags;
  try {
    flags = parseArgs({
      options: {
        reference: { type: 'boolean', default: false },
        seed: { type: 'string' },
        layers: { type: 'string' },
        'timeout-ms': { type: 'string' },
      },
    }).values;
  } catch (e) {
    die(2, process.env['RANK'] ?? '?', e);
  }
  const seed = intFlag(flags.seed ?? process.env['MODEL_SEED'], '--seed / MODEL_SEED', DEFAULT_SEED);
  if (flags.reference) {
    const pp = Number(process.env[SHARD_ENV.PP_SIZE]);
    const layers = intFlag(flags.layers, '--layers', totalLayers(Number.isInteger(pp) && pp > 0 ? pp : 2));
    emit({ muster: 'reference', seed, layers, shape: [BATCH, D_MODEL], output: Array.from(reference(seed, layers)) });
    return;
  }
  const timeoutMs = intFlag(flags['timeout-ms'], '--timeout-ms', 30_000);
  // From here on a stop request is an orderly exit 0, at any stage (Muster stops a gang that is still starting).
  const stop = (signal: string): void => {
    emit({ muster: 'stop', rank: Number(process.env['RANK']), signal, ms: elapsed() });
    process.exit(0);
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));

  // Logged before any check, so a broken contract is visible as it was given.
  emit({ muster: 'start', rank: process.env['RANK'] ?? null, pid: process.pid, env: rawContract(process.env) });
  let env: ShardEnv;
  try {
    env = parseShardEnv(process.env);
  } catch (e) {
    die(e instanceof EnvError ? 2 : 1, process.env['RANK'] ?? '?', e);
  }
  const rank = String(env.rank);
  const state: RankState = { rank: env.rank, lastStage: env.ppRank === env.ppSize - 1, ready: false, result: null };

  try {
    const host = bindHost(env);
    if (env.httpPort !== null) await startHttp(state, httpBindHost(env), env.httpPort);
    const listener = await PeerListener.listen(host, env.distPort ?? 0, env.replicaId);
    const hello = helloOf(env, seed, listener.port);
    if (env.rank === 0) await startRendezvousServer(hello, host, env.masterPort);
    const table = await rendezvous(env, hello, timeoutMs);
    const mesh = await Mesh.open(env, listener, table, timeoutMs);
    listener.close();
    const out = await forward(env, mesh, seed);
    mesh.close();

    if (state.lastStage) {
      const layers = totalLayers(env.ppSize);
      const err = maxAbsDiff(out, reference(seed, layers));
      const ok = err <= TOLERANCE;
      state.result = { muster: 'result', rank: env.rank, output: Array.from(out), maxAbsErrVsReference: err, ok, shape: [BATCH, D_MODEL], layers, tpSize: env.tpSize, ppSize: env.ppSize, ms: elapsed() };
      if (env.tpRank === 0) emit(state.result);
      // A wrong answer must not make the gang READY: fail instead, so Muster restarts or reports it.
      if (!ok) throw new Error(`wrong answer: max abs error ${err} vs the reference exceeds ${TOLERANCE}`);
    }
  } catch (e) {
    die(e instanceof EnvError || e instanceof LayoutError ? 2 : 1, rank, e);
  }

  state.ready = true;
  emit({ muster: 'ready', rank: env.rank, ms: elapsed() });
  if (process.send && process.connected) process.send({ muster: 'ready' });
  // Stay up until SIGTERM even with no HTTP server or IPC channel holding the event loop open.
  setInterval(() => {}, 2 ** 30);
}

main().catch((e: unknown) => die(1, process.env['RANK'] ?? '?', e));
