/**
 * examples/tp-pp-mlp: the math of the TP/PP split (pure), the wire format and
 * the contract checks, then real gangs of processes on loopback, run from
 * source through tsx (nothing to build first). Every process a test starts
 * is killed in afterEach, whatever the test did.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { EnvError, parseShardEnv } from '../../examples/tp-pp-mlp/src/env.js';
import { FrameDecoder, MAX_FRAME_BYTES, encodeFrame } from '../../examples/tp-pp-mlp/src/frames.js';
import { LocalGang, type LocalGangOptions } from '../../examples/tp-pp-mlp/src/local.js';
import { peersOf } from '../../examples/tp-pp-mlp/src/mesh.js';
import * as m from '../../examples/tp-pp-mlp/src/model.js';
import { checkHellos, type Hello, type PeerAddr } from '../../examples/tp-pp-mlp/src/rendezvous.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const rankTs = fileURLToPath(new URL('../../examples/tp-pp-mlp/src/rank.ts', import.meta.url));
const SEED = 1234;

describe('tp-pp-mlp math', () => {
  const x = m.inputBatch(SEED);
  const layer = m.layerWeights(SEED, 0);
  const full = m.layerForward(x, m.BATCH, layer);

  it('weights and input are a deterministic function of the seed', () => {
    expect(m.layerWeights(SEED, 3).w1).toEqual(m.layerWeights(SEED, 3).w1);
    expect(m.maxAbsDiff(m.layerWeights(SEED, 3).w1, m.layerWeights(SEED, 4).w1)).toBeGreaterThan(0.1);
    expect(m.maxAbsDiff(m.inputBatch(SEED), m.inputBatch(SEED + 1))).toBeGreaterThan(0.1);
    const r = m.mulberry32(7);
    const draws = Array.from({ length: 1000 }, r);
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(1);
  });

  it.each([1, 2, 4, 8, 16])('TP=%i: the column/row slices sum back to the full layer', (tp) => {
    const partials = Array.from({ length: tp }, (_, t) => m.partialForward(x, m.BATCH, m.shardLayer(layer, t, tp)));
    expect(m.maxAbsDiff(m.addResidual(x, m.sumInOrder(partials)), full)).toBeLessThan(1e-12);
    // …and no single slice is the answer on its own: the all-reduce is needed.
    if (tp > 1) for (const p of partials) expect(m.maxAbsDiff(m.addResidual(x, p), full)).toBeGreaterThan(1e-2);
  });

  it('pairing the W1 columns of one TP rank with the W2 rows of another gives a wrong layer', () => {
    const tp = 4;
    const shards = Array.from({ length: tp }, (_, t) => m.shardLayer(layer, t, tp));
    const crossed = shards.map((s, t) => ({ ...s, w2: shards[(t + 1) % tp]!.w2 }));
    const out = m.addResidual(x, m.sumInOrder(crossed.map((s) => m.partialForward(x, m.BATCH, s))));
    expect(m.maxAbsDiff(out, full)).toBeGreaterThan(1e-2);
  });

  it.each([
    [2, 1],
    [2, 2],
    [4, 2],
    [1, 4],
  ])('TP=%i × PP=%i: stages composed in order reproduce the reference', (tp, pp) => {
    const layers = m.totalLayers(pp);
    let act = m.inputBatch(SEED);
    const seen: number[] = [];
    for (let stage = 0; stage < pp; stage++) {
      const { first, count } = m.stageLayers(stage);
      for (let l = first; l < first + count; l++) {
        seen.push(l);
        const w = m.layerWeights(SEED, l);
        const parts = Array.from({ length: tp }, (_, t) => m.partialForward(act, m.BATCH, m.shardLayer(w, t, tp)));
        act = m.addResidual(act, m.sumInOrder(parts));
      }
    }
    expect(seen).toEqual(Array.from({ length: layers }, (_, i) => i));
    expect(m.maxAbsDiff(act, m.reference(SEED, layers))).toBeLessThan(1e-12);
    // Stages out of order are wrong: the pipeline order matters.
    if (pp > 1) expect(m.maxAbsDiff(m.reference(SEED, layers), m.layerForward(m.reference(SEED, layers - 1), m.BATCH, m.layerWeights(SEED, 0)))).toBeGreaterThan(1e-2);
  });

  it('keeps outputs O(1) from 2 to 32 layers, so an error cannot hide under the tolerance', () => {
    for (const layers of [2, 8, 32]) {
      const out = m.reference(SEED, layers);
      const rms = Math.sqrt(out.reduce((s, v) => s + v * v, 0) / out.length);
      expect(rms).toBeGreaterThan(0.1);
      expect(rms).toBeLessThan(10);
    }
  });

  it('maxAbsDiff counts NaN and a length mismatch as infinitely wrong', () => {
    expect(m.maxAbsDiff(new Float64Array([1, NaN]), new Float64Array([1, 2]))).toBe(Infinity);
    expect(m.maxAbsDiff(new Float64Array([1]), new Float64Array([1, 2]))).toBe(Infinity);
  });
});

describe('tp-pp-mlp wire and contract', () => {
  it('frames survive any cut of the byte stream, bit for bit', () => {
    const data = new Float64Array([1.5, -0, NaN, 1e-300, -Infinity, Math.PI]);
    const bytes = Buffer.concat([encodeFrame({ t: 'data', tag: 'layer 0' }, data), encodeFrame({ t: 'hello' })]);
    const dec = new FrameDecoder();
    const frames = [...bytes].flatMap((b) => dec.push(Buffer.from([b])));
    expect(frames.map((f) => f.header)).toEqual([{ t: 'data', tag: 'layer 0' }, { t: 'hello' }]);
    expect(Buffer.from(frames[0]!.data.buffer)).toEqual(Buffer.from(data.buffer));
    expect(frames[1]!.data.length).toBe(0);
  });

  it('rejects oversized and malformed frames', () => {
    const big = Buffer.alloc(8);
    big.writeUInt32BE(MAX_FRAME_BYTES + 1, 0);
    expect(() => new FrameDecoder().push(big)).toThrow(/exceeds/);
    const odd = encodeFrame({ t: 'x' }, new Float64Array([1]));
    odd.writeUInt32BE(odd.readUInt32BE(4) + 1, 4); // header length no longer leaves whole float64s
    expect(() => new FrameDecoder().push(odd)).toThrow(/malformed/);
  });

  const good = {
    RANK: '3', WORLD_SIZE: '4', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500',
    MUSTER_TP_RANK: '1', MUSTER_TP_SIZE: '2', MUSTER_PP_RANK: '1', MUSTER_PP_SIZE: '2', MUSTER_REPLICA_ID: 'r-1', MUSTER_GROUP: 'g',
    CUDA_VISIBLE_DEVICES: '1', MUSTER_PORT_HTTP: '8080',
  };

  it('parses a valid contract', () => {
    expect(parseShardEnv(good)).toMatchObject({ rank: 3, tpRank: 1, ppRank: 1, cudaVisibleDevices: '1', httpPort: 8080, distPort: null });
  });

  it.each<[string, Record<string, string | undefined>, string]>([
    ['missing RANK', { RANK: undefined }, 'RANK'],
    ['non-integer WORLD_SIZE', { WORLD_SIZE: '4.0' }, 'WORLD_SIZE'],
    ['WORLD_SIZE ≠ TP × PP', { WORLD_SIZE: '6' }, 'WORLD_SIZE'],
    ['RANK out of range', { RANK: '4', MUSTER_PP_RANK: '2' }, 'RANK'],
    ['TP rank out of range', { MUSTER_TP_RANK: '2' }, 'MUSTER_TP_RANK'],
    ['TP ranks swapped', { MUSTER_TP_RANK: '0' }, 'MUSTER_TP_RANK'],
    ['stage wrong', { MUSTER_PP_RANK: '0' }, 'MUSTER_PP_RANK'],
    ['LOCAL_RANK ≥ LOCAL_WORLD_SIZE', { LOCAL_RANK: '2' }, 'LOCAL_RANK'],
    ['LOCAL_WORLD_SIZE > WORLD_SIZE', { LOCAL_WORLD_SIZE: '5', LOCAL_RANK: '0' }, 'LOCAL_WORLD_SIZE'],
    ['MASTER_PORT out of range', { MASTER_PORT: '70000' }, 'MASTER_PORT'],
    ['empty MUSTER_GROUP', { MUSTER_GROUP: ' ' }, 'MUSTER_GROUP'],
    ['bad MUSTER_PORT_HTTP', { MUSTER_PORT_HTTP: 'http' }, 'MUSTER_PORT_HTTP'],
    ['TP size not dividing the hidden width', { MUSTER_TP_SIZE: '3', MUSTER_PP_SIZE: '1', WORLD_SIZE: '3', MUSTER_PP_RANK: '0', RANK: '1' }, 'MUSTER_TP_SIZE'],
  ])('%s → EnvError naming the variable', (_name, edit, variable) => {
    const env: Record<string, string | undefined> = { ...good, ...edit };
    const err = (() => {
      try {
        parseShardEnv(env);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(EnvError);
    expect((err as EnvError).variable).toBe(variable);
    expect((err as EnvError).message).toContain(variable);
  });

  const hello = (rank: number, over: Partial<Hello> = {}): Hello => ({
    rank, worldSize: 4, tpRank: rank % 2, tpSize: 2, ppRank: Math.floor(rank / 2), ppSize: 2, replicaId: 'r', group: 'g', attempt: '2', seed: 1, port: 1000 + rank, pid: 100 + rank, ...over,
  });

  it('rank 0 refuses a gang whose ranks disagree, naming the variable', () => {
    const own = hello(0);
    expect(checkHellos(own, [0, 1, 2, 3].map((r) => hello(r)))).toBeNull();
    expect(checkHellos(own, [hello(0), hello(1), hello(1), hello(3)])?.variable).toBe('RANK');
    expect(checkHellos(own, [hello(0), hello(1), hello(2), hello(3, { tpSize: 4, ppSize: 1, tpRank: 3, ppRank: 0 })])?.variable).toBe('MUSTER_TP_SIZE');
    expect(checkHellos(own, [hello(0), hello(1), hello(2, { replicaId: 'other' }), hello(3)])?.variable).toBe('MUSTER_REPLICA_ID');
    expect(checkHellos(own, [hello(0, { tpRank: 1 }), hello(1, { tpRank: 0 }), hello(2), hello(3)])?.variable).toBe('MUSTER_TP_RANK');
    // A straggler of the previous attempt, and a rank built with other weights.
    expect(checkHellos(own, [hello(0), hello(1), hello(2), hello(3, { attempt: '1' })])).toMatchObject({ variable: 'MUSTER_ATTEMPT', message: expect.stringContaining('rank 3 (pid 103) has MUSTER_ATTEMPT=1') });
    expect(checkHellos(own, [hello(0), hello(1, { seed: 7 }), hello(2), hello(3)])?.variable).toBe('MODEL_SEED');
  });

  it('a rank talks to its TP group and its neighbours in the same TP column only', () => {
    const table: PeerAddr[] = Array.from({ length: 6 }, (_, r) => ({ rank: r, host: 'h', port: r, tpRank: r % 2, ppRank: Math.floor(r / 2) }));
    expect(peersOf(table, 3).map((p) => p.rank).sort()).toEqual([1, 2, 5]);
    expect(peersOf(table, 0).map((p) => p.rank).sort()).toEqual([1, 2]);
  });
});

describe('tp-pp-mlp gangs on loopback', () => {
  const gangs: LocalGang[] = [];
  afterEach(() => {
    for (const g of gangs.splice(0)) g.kill();
  });
  const start = async (opts: Omit<LocalGangOptions, 'rankArgs' | 'cwd'>): Promise<LocalGang> => {
    const g = await LocalGang.start({ ...opts, rankArgs: ['--import', 'tsx', rankTs], cwd: root });
    gangs.push(g);
    return g;
  };
  const errorLine = (stderr: string): Record<string, unknown> => JSON.parse(stderr.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;

  it('TP=2 × PP=2 matches the single-process reference, serves /health and /result, stops on SIGTERM', async () => {
    const gang = await start({ tp: 2, pp: 2 });
    const result = await gang.waitForResult(15_000);
    expect(result).toMatchObject({ muster: 'result', rank: 2, ok: true });
    expect(result['maxAbsErrVsReference']).toBeLessThanOrEqual(1e-5);

    const ref = spawnSync(process.execPath, ['--import', 'tsx', rankTs, '--reference', '--layers', '4'], { cwd: root, encoding: 'utf8' });
    const refOut = (JSON.parse(ref.stdout) as { output: number[] }).output;
    expect(m.maxAbsDiff(new Float64Array(result['output'] as number[]), new Float64Array(refOut))).toBeLessThanOrEqual(1e-5);

    for (const p of gang.ranks) {
      const startLine = p.lines.find((l) => l['muster'] === 'start') as { env: Record<string, string> };
      expect(startLine.env).toMatchObject({ RANK: String(p.rank), CUDA_VISIBLE_DEVICES: String(p.rank), MUSTER_TP_RANK: String(p.rank % 2) });
      expect(p.lines.filter((l) => l['muster'] === 'result')).toHaveLength(p.rank === 2 ? 1 : 0);
      expect((await fetch(`http://127.0.0.1:${p.httpPort}/health`)).status).toBe(200);
      const res = await fetch(`http://127.0.0.1:${p.httpPort}/result`);
      expect(res.status).toBe(p.rank >= 2 ? 200 : 404);
      if (p.rank >= 2) expect(await res.json()).toMatchObject({ ok: true, rank: p.rank });
    }
    const exits = await gang.stop();
    expect(exits.map((e) => e.code)).toEqual([0, 0, 0, 0]);
  });

  it('TP=4 × PP=2 matches the reference', async () => {
    const t0 = performance.now();
    const gang = await start({ tp: 4, pp: 2 });
    const result = await gang.waitForResult(15_000);
    console.log(`TP4×PP2 from spawn to all 8 ranks ready: ${Math.round(performance.now() - t0)} ms (tsx, from source)`);
    expect(result).toMatchObject({ rank: 4, ok: true, tpSize: 4, ppSize: 2 });
    expect(result['maxAbsErrVsReference']).toBeLessThanOrEqual(1e-5);
    expect((await gang.stop()).every((e) => e.code === 0)).toBe(true);
  });

  it('two ranks with swapped MUSTER_TP_RANK fail with exit 2 naming the variable, never a result', async () => {
    const gang = await start({
      tp: 2,
      pp: 2,
      extraArgs: ['--timeout-ms', '3000'],
      editEnv: (rank, env) => {
        if (rank < 2) env['MUSTER_TP_RANK'] = String(1 - rank);
      },
    });
    await expect(gang.waitForResult(15_000)).rejects.toThrow(/exited early/);
    for (const p of gang.ranks.slice(0, 2)) {
      expect((await p.exited).code).toBe(2);
      expect(errorLine(p.stderr)).toMatchObject({ variable: 'MUSTER_TP_RANK', message: expect.stringContaining(`rank ${p.rank}: MUSTER_TP_RANK`) });
    }
    expect(gang.ranks.flatMap((p) => p.lines).some((l) => l['ok'] === true)).toBe(false);
  });

  it('a rank whose sizes disagree with rank 0 makes every rank fail at the rendezvous', async () => {
    const gang = await start({
      tp: 2,
      pp: 2,
      editEnv: (rank, env) => {
        // Self-consistent on its own (4 = 4 × 1, rank 3 = 0 × 4 + 3), wrong for the gang.
        if (rank === 3) Object.assign(env, { MUSTER_TP_SIZE: '4', MUSTER_PP_SIZE: '1', MUSTER_TP_RANK: '3', MUSTER_PP_RANK: '0' });
      },
    });
    const exits = await Promise.all(gang.ranks.map((p) => p.exited));
    expect(exits.map((e) => e.code)).toEqual([2, 2, 2, 2]);
    for (const p of gang.ranks) {
      expect(errorLine(p.stderr)).toMatchObject({ variable: 'MUSTER_TP_SIZE', message: expect.stringContaining('rank 3 (pid') });
    }
  });

  it('times out the rendezvous with a clear error when rank 0 never comes; exits 0 on SIGTERM while waiting', async () => {
    const gang = await start({
      tp: 2,
      pp: 1,
      extraArgs: ['--timeout-ms', '500'],
      editEnv: (rank, env) => {
        if (rank === 0) env['MUSTER_GROUP'] = '';
      },
    });
    const [r0, r1] = gang.ranks;
    expect((await r0!.exited).code).toBe(2);
    expect(errorLine(r0!.stderr)).toMatchObject({ variable: 'MUSTER_GROUP' });
    expect((await r1!.exited).code).toBe(1);
    const port = (r1!.lines[0] as { env: Record<string, string> }).env['MASTER_PORT'];
    expect(errorLine(r1!.stderr)['message']).toMatch(new RegExp(`^rank 1: no rendezvous with 127\\.0\\.0\\.1:${port} within 0\\.5 s \\(could not connect: ECONNREFUSED\\)`));

    const waiting = await start({ tp: 2, pp: 1, editEnv: (rank, env) => void (rank === 0 && (env['MUSTER_GROUP'] = '')) });
    await waiting.ranks[0]!.exited;
    await expect.poll(() => waiting.ranks[1]!.lines.length).toBeGreaterThan(0);
    const exits = await waiting.stop(2000);
    expect(exits[1]).toEqual({ code: 0, signal: null });
  });
});
