/**
 * Plumbing shared by the SDK's API groups: calls that reach the leading head
 * whichever it is now, and watch streams that survive a head restart or a
 * failover.
 *
 * A unary call that fails with a retryable error (the head went away, a
 * standby refused with MUSTER_NOT_LEADER, a store conflict) is tried again
 * after a backoff (50 ms doubling to 500 ms, with jitter), each time at the next
 * head (`Endpoints.failover`: the leader the refusal named, else the next
 * address), until the call's own deadline. Any other error is thrown at once.
 * Retrying is safe because every control call is idempotent on the head:
 * creates carry one request id for all their attempts, removes, stops,
 * scales and applies converge on the same state.
 */
import type { Client, ClientReadableStream, Metadata } from '@grpc/grpc-js';
import { ErrorCode, MusterError, fromGrpcError } from '@muster/common';
import type { Endpoints, ServiceClass } from './endpoints.js';

export type Callback<T> = (err: unknown, res?: T) => void;

/** One attempt of a unary call: the client of the head it goes to, the cluster's metadata, the call's deadline. */
export type Attempt<C, T> = (client: C, md: Metadata, opts: { deadline: number }, cb: Callback<T>) => void;

/**
 * One gRPC service of the cluster, at whichever head leads: what an API
 * group holds instead of a client, so no group can keep talking to a head
 * that lost the lead.
 */
export class HeadService<C extends Client> {
  constructor(
    private readonly endpoints: Endpoints,
    private readonly service: ServiceClass<C>,
    readonly metadata: Metadata,
    private readonly callTimeoutMs: number,
  ) {}

  /**
   * One unary call, retried across heads until `timeoutMs` (default: the
   * cluster's callTimeoutMs) has passed; rejects with MusterError. `fn` runs
   * once per attempt, with that attempt's client.
   *
   * A call with the default timeout gives each attempt at most
   * ATTEMPT_TIMEOUT_MS: a head that accepts the call but never answers
   * (frozen, partitioned) costs that long, then the next head is tried. A
   * call with an explicit timeout (a long-poll wait) gives its attempt all
   * of it.
   */
  call<T>(fn: Attempt<C, T>, timeoutMs?: number): Promise<T> {
    const attemptMs = timeoutMs === undefined ? ATTEMPT_TIMEOUT_MS : Infinity;
    return withFailover(this.endpoints, timeoutMs ?? this.callTimeoutMs, (address, deadline) =>
      new Promise<T>((resolve, reject) =>
        fn(this.endpoints.client(this.service, address), this.metadata, { deadline: Math.min(deadline, Date.now() + attemptMs) }, (err, res) => (err ? reject(err) : resolve(res as T))),
      ),
    );
  }

  /**
   * A server stream, opened again (at the leader) whenever it breaks: see
   * `resumingStream`. `each`, if given, reads each connection's messages on
   * its own (what it yields is yielded): state it keeps ends with the connection.
   */
  watch<T, U = T>(open: (client: C, md: Metadata) => ClientReadableStream<T>, signal?: AbortSignal, each?: (messages: AsyncIterable<T>) => AsyncIterable<U>): AsyncGenerator<U> {
    return resumingStream(this.endpoints, (address) => open(this.endpoints.client(this.service, address), this.metadata), signal, each);
  }

  /** The client of the current head, for a stream that is not resumed (a log tail). */
  current(): C {
    return this.endpoints.client(this.service);
  }
}

/**
 * Runs `attempt` at the current head until it succeeds, a non-retryable
 * error comes back, or `timeoutMs` has passed. The last backoff is cut short
 * at the deadline, and a retry still running then (at a head that hangs)
 * counts as one more retryable failure: either way the caller gets an error
 * that names the heads tried and the last refusal.
 */
async function withFailover<T>(endpoints: Endpoints, timeoutMs: number, attempt: (address: string, deadline: number) => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const tried: string[] = [];
  let refusal: { err: MusterError; address: string } | undefined;
  let backoff = 50;
  for (;;) {
    const address = endpoints.current;
    if (!tried.includes(address)) tried.push(address);
    let err: MusterError;
    try {
      return await attempt(address, deadline);
    } catch (e) {
      err = fromGrpcError(e);
    }
    const hung = refusal !== undefined && err.code === ErrorCode.DEADLINE_EXCEEDED && Date.now() >= deadline;
    // An attempt cut short before the call's deadline: that head did not answer, try the next.
    const silent = err.code === ErrorCode.DEADLINE_EXCEEDED && deadline - Date.now() > TIMER_SLACK_MS;
    if (silent) {
      err = new MusterError(ErrorCode.UNAVAILABLE, `head ${address} did not answer within ${duration(ATTEMPT_TIMEOUT_MS)}`, { cause: err });
    }
    if (err.retryable) {
      refusal = { err, address };
      const refused = endpoints.failover(address, err);
      if (refused) throw refused;
    } else if (!hung) {
      throw err;
    }
    // Equal jitter: callers that failed together do not come back together.
    const pause = backoff / 2 + (Math.random() * backoff) / 2;
    endpoints.onRetry?.({ address, error: err, retryInMs: Math.round(pause), deadlineInMs: Math.max(0, deadline - Date.now()) });
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(pause, deadline - Date.now()))));
    backoff = Math.min(backoff * 2, 500);
    if (deadline - Date.now() <= TIMER_SLACK_MS) {
      const last = refusal!;
      const then = hung ? `; then ${address} did not answer in time` : '';
      // One head configured: name it; several: none of them led and answered.
      const who = endpoints.addresses.length === 1 && tried.length === 1 ? `head ${tried[0]} did not answer` : `no leader among ${tried.join(',')} answered`;
      const hint = last.err.code === ErrorCode.UNAVAILABLE ? endpoints.unreachableHint : '';
      throw new MusterError(last.err.code, `${who} within ${duration(timeoutMs)}; last error (from ${last.address}): ${last.err.message}${then}${hint}`, {
        cause: last.err,
        details: { ...last.err.details, tried },
      });
    }
  }
}

/** The longest one attempt of a default-timeout call waits for a head before trying the next. */
const ATTEMPT_TIMEOUT_MS = 3_000;
/** A timer may fire a millisecond before Date.now() reaches its time; a try with no time left could only time out. */
const TIMER_SLACK_MS = 2;
const duration = (ms: number) => (ms % 1_000 === 0 ? `${ms / 1_000} s` : `${ms} ms`);

/**
 * Yields the messages of a server stream, opening it again (with backoff,
 * 100 ms … 2 s) when it breaks or the head ends it, like a Kubernetes
 * informer. After a retryable error it reopens at the next head (the leader
 * a refusal named, else the next address), as a unary call would retry.
 * `open` is called for every (re)connection with the head to open it at, so
 * it can resume after the last message seen. A stream the head cut because
 * this reader fell behind (MUSTER_CONSUMER_TOO_SLOW) reopens at once, at the
 * same head. Ends when `signal` aborts or
 * the consumer stops; throws on a non-retryable error (a revoked token).
 */
async function* resumingStream<T, U>(endpoints: Endpoints, open: (address: string) => ClientReadableStream<T>, signal?: AbortSignal, each?: (messages: AsyncIterable<T>) => AsyncIterable<U>): AsyncGenerator<U> {
  let delay = 100;
  while (!signal?.aborted) {
    const address = endpoints.current;
    const call = open(address);
    const abort = () => call.cancel();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      for await (const m of each ? each(call as AsyncIterable<T>) : (call as AsyncIterable<U>)) {
        delay = 100;
        yield m;
      }
      // The head ended the stream (it is shutting down), or `each` ended it (a protocol error): open it again below.
    } catch (e) {
      if (signal?.aborted) return;
      const err = fromGrpcError(e);
      if (err.retryable) {
        const refused = endpoints.failover(address, err);
        if (refused) throw refused;
      }
      // The head cut a reader that fell too far behind: open again at the same head, from the last message.
      else if (err.code === ErrorCode.CONSUMER_TOO_SLOW) delay = 0;
      // CANCELLED here came from the head's side (we did not abort).
      else if (err.code !== ErrorCode.CANCELLED) throw err;
    } finally {
      signal?.removeEventListener('abort', abort);
      call.cancel();
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(Math.max(delay * 2, 100), 2_000);
  }
}
