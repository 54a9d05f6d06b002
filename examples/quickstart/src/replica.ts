/**
 * One replica of the quick start's model service: the tp-pp-mlp model (its
 * 4 layers, unsplit, weights from MODEL_SEED) behind the SDK's `serve()`.
 * A call sends rows of 64 inputs and gets the model's output rows back,
 * with the id of the replica that answered. Ready (the `sdk` probe) once
 * the weights are built.
 */
import { D_MODEL, layerForward, layerWeights } from '@muster/example-tp-pp-mlp/model';
import { ErrorCode, MusterError, serve, shard } from '@muster/sdk';

const LAYERS = 4;
const env = shard.env();
const seed = Number(process.env.MODEL_SEED ?? 1234);
const layers = Array.from({ length: LAYERS }, (_, l) => layerWeights(seed, l));

const server = await serve({
  unary: (payload) => {
    const input = (payload as { input?: unknown }).input;
    if (!Array.isArray(input) || input.length === 0 || input.length % D_MODEL !== 0 || !input.every((v) => typeof v === 'number')) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `input: expected rows of ${D_MODEL} numbers, flattened`);
    }
    let x: Float64Array = Float64Array.from(input as number[]);
    for (const layer of layers) x = layerForward(x, input.length / D_MODEL, layer);
    return { output: Array.from(x), replica: env.replicaId };
  },
});
shard.ready();

process.on('SIGTERM', () => {
  // Answer what was accepted, then go.
  void server.drain().then(() => process.exit(0));
});
