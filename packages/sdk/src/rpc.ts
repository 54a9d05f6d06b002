/**
 * Plumbing shared by the SDK's API groups: the unary-call shape they get
 * from the Cluster (token metadata, deadline, error mapping), and watch
 * streams that survive a head restart.
 */
import type { ClientReadableStream, Metadata } from '@grpc/grpc-js';
import { ErrorCode, fromGrpcError } from '@muster/common';

/** Runs one unary gRPC call with the cluster's metadata and a deadline; rejects with MusterError. */
export type Call = <T>(fn: (md: Metadata, opts: { deadline: number }, cb: (err: unknown, res?: T) => void) => void, timeoutMs?: number) => Promise<T>;

/**
 * Yields the messages of a server stream, opening it again (with backoff,
 * 100 ms … 2 s) when it breaks or the head ends it, like a Kubernetes
 * informer. `open` is called for every (re)connection, so it can resume
 * after the last message seen. Ends when `signal` aborts or the consumer
 * stops; throws on a non-retryable error (a revoked token).
 */
export async function* resumingStream<T>(open: () => ClientReadableStream<T>, signal?: AbortSignal): AsyncGenerator<T> {
  let delay = 100;
  while (!signal?.aborted) {
    const call = open();
    const abort = () => call.cancel();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      for await (const m of call as AsyncIterable<T>) {
        delay = 100;
        yield m;
      }
      // The head ended the stream (it is shutting down): open it again below.
    } catch (e) {
      if (signal?.aborted) return;
      const err = fromGrpcError(e);
      // CANCELLED here came from the head's side (we did not abort).
      if (!err.retryable && err.code !== ErrorCode.CANCELLED) throw err;
    } finally {
      signal?.removeEventListener('abort', abort);
      call.cancel();
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 2_000);
  }
}
