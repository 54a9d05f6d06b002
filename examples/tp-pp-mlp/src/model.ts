/**
 * The model: a stack of residual MLP blocks `y = x + gelu(x·W1)·W2` (the MLP
 * half of a transformer layer), with weights drawn
 * from a seeded PRNG so that every process (each rank, the single-process
 * reference, a test) builds bit-identical weights without shipping any.
 *
 * Tensor parallelism is Megatron's MLP split: W1 (D×H) is cut by columns and
 * W2 (H×D) by rows into TP slices of H/T hidden units. Rank t computes
 * `gelu(x·W1[:, t]) · W2[t, :]`, a full D-wide partial output; GELU works
 * element-wise on hidden units, so the partials of all T ranks sum exactly
 * (up to float rounding) to the unsplit block. One all-reduce per layer;
 * every TP rank then holds the full x and adds the residual itself, as
 * Megatron does. (Without the residual, depth either shrinks the activation
 * towards 0 or blows it up, depending on the scale of W2: a 16-layer stack
 * would end near 1e-3, where a broken shard could hide under the tolerance.)
 *
 * Pipeline parallelism gives each stage LAYERS_PER_STAGE consecutive layers;
 * the model has LAYERS_PER_STAGE × PP layers, so a gang always runs the model
 * its reference is computed for.
 *
 * Everything is float64 (Float64Array, row-major) and dependency-free.
 */

/** Model (input/output) width. */
export const D_MODEL = 64;
/** Hidden width of each MLP block; MUSTER_TP_SIZE must divide it. */
export const D_HIDDEN = 256;
/** Rows of the fixed input batch. */
export const BATCH = 4;
/** Layers held by each pipeline stage. */
export const LAYERS_PER_STAGE = 2;
export const DEFAULT_SEED = 1234;
/** A gang's answer counts as right when every element is this close to the reference. */
export const TOLERANCE = 1e-5;

/** One MLP block: w1 is D×H, w2 is H×D (row-major). */
export interface Layer {
  w1: Float64Array;
  w2: Float64Array;
}

/** The slice of one layer that a TP rank holds: w1 is D×h, w2 is h×D, h = H / T. */
export interface LayerShard {
  w1: Float64Array;
  w2: Float64Array;
  hidden: number;
}

/** mulberry32: a tiny 32-bit PRNG, good enough for test weights and identical on every platform. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A sub-stream seed for (seed, stream): each layer's weights come from their
 * own stream, so a stage generates only its own layers instead of replaying
 * the PRNG through all earlier ones. (A murmur3-style finaliser mixes bits.)
 */
function streamSeed(seed: number, stream: number): number {
  let h = (seed ^ Math.imul(stream + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** n values uniform in [-scale, scale). */
function uniform(n: number, rnd: () => number, scale: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (rnd() * 2 - 1) * scale;
  return out;
}

/**
 * Layer l's full weights. W1 gives GELU inputs of about the activation's
 * size (variance 1/D); W2 is small (variance 1/(3H)) so that each residual
 * branch adds a fraction of x. Measured for seed 1234: output RMS 0.6 at 2
 * layers, 1.4 at 16, 4.4 at 32, so any stack a gang runs produces O(1)
 * outputs and a wrong shard shows up as a large error, not a vanishing one.
 */
export function layerWeights(seed: number, l: number): Layer {
  const rnd = mulberry32(streamSeed(seed, 1 + l));
  const w1 = uniform(D_MODEL * D_HIDDEN, rnd, Math.sqrt(3 / D_MODEL));
  const w2 = uniform(D_HIDDEN * D_MODEL, rnd, Math.sqrt(1 / D_HIDDEN));
  return { w1, w2 };
}

/** The fixed input batch (BATCH × D, values in [-1, 1)). */
export function inputBatch(seed: number): Float64Array {
  return uniform(BATCH * D_MODEL, mulberry32(streamSeed(seed, 0)), 1);
}

/** (n×k)·(k×m), row-major. */
export function matmul(a: Float64Array, n: number, k: number, b: Float64Array, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p]!;
      if (aip === 0) continue;
      const row = p * m;
      const o = i * m;
      for (let j = 0; j < m; j++) out[o + j]! += aip * b[row + j]!;
    }
  }
  return out;
}

/** GELU, tanh approximation (GPT-2's); Math has no erf. */
export function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

/** gelu(x·w1)·w2 for `rows` rows of x; w1 is D×hidden, w2 is hidden×D. */
export function mlpBlock(x: Float64Array, rows: number, w1: Float64Array, w2: Float64Array, hidden: number): Float64Array {
  const h = matmul(x, rows, D_MODEL, w1, hidden);
  for (let i = 0; i < h.length; i++) h[i] = gelu(h[i]!);
  return matmul(h, rows, hidden, w2, D_MODEL);
}

/** TP rank `tpRank`'s slice of a layer: columns [t·h, (t+1)·h) of W1, the same rows of W2. */
export function shardLayer(layer: Layer, tpRank: number, tpSize: number): LayerShard {
  if (D_HIDDEN % tpSize !== 0) throw new Error(`TP size ${tpSize} does not divide hidden width ${D_HIDDEN}`);
  const hidden = D_HIDDEN / tpSize;
  const c0 = tpRank * hidden;
  const w1 = new Float64Array(D_MODEL * hidden);
  for (let r = 0; r < D_MODEL; r++) w1.set(layer.w1.subarray(r * D_HIDDEN + c0, r * D_HIDDEN + c0 + hidden), r * hidden);
  const w2 = layer.w2.slice(c0 * D_MODEL, (c0 + hidden) * D_MODEL);
  return { w1, w2, hidden };
}

/** A TP rank's partial of one layer's MLP branch: summed over all TP ranks, it is the branch's output. */
export function partialForward(x: Float64Array, rows: number, shard: LayerShard): Float64Array {
  return mlpBlock(x, rows, shard.w1, shard.w2, shard.hidden);
}

/**
 * Element-wise sum in the given order. Every TP rank sums the partials in
 * TP-rank order, so all of them end up with bit-identical activations.
 */
export function sumInOrder(parts: readonly Float64Array[]): Float64Array {
  const first = parts[0];
  if (!first) throw new Error('nothing to sum');
  const out = new Float64Array(first);
  for (const p of parts.slice(1)) {
    if (p.length !== out.length) throw new Error(`cannot sum ${p.length} values into ${out.length}`);
    for (let i = 0; i < out.length; i++) out[i]! += p[i]!;
  }
  return out;
}

/** Layers of the whole model for a pipeline of `ppSize` stages. */
export function totalLayers(ppSize: number): number {
  return LAYERS_PER_STAGE * ppSize;
}

/** The layers stage `ppRank` holds: [first, first + count). */
export function stageLayers(ppRank: number): { first: number; count: number } {
  return { first: ppRank * LAYERS_PER_STAGE, count: LAYERS_PER_STAGE };
}

/** x + branch, element-wise (the residual connection), into a new array. */
export function addResidual(x: Float64Array, branch: Float64Array): Float64Array {
  const out = new Float64Array(branch);
  for (let i = 0; i < out.length; i++) out[i]! += x[i]!;
  return out;
}

/** One whole layer, unsplit. */
export function layerForward(x: Float64Array, rows: number, layer: Layer): Float64Array {
  return addResidual(x, mlpBlock(x, rows, layer.w1, layer.w2, D_HIDDEN));
}

/** The whole model in one process, unsplit: what a gang must reproduce. */
export function reference(seed: number, layers: number): Float64Array {
  let x = inputBatch(seed);
  for (let l = 0; l < layers; l++) x = layerForward(x, BATCH, layerWeights(seed, l));
  return x;
}

export function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    // A NaN difference counts as Infinity: a plain `d > m` is false for NaN and would skip it.
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
