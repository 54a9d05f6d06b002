/**
 * What every gRPC handler of the head shares: authentication (a client
 * certificate or the cluster token, authenticate.ts) and authorization by the
 * access table (access.ts) before the handler runs, RPC metrics (count by
 * method and code, refusals included; latency) and the mapping of thrown
 * errors to gRPC status + `muster-error-code`. Handlers are plain async
 * functions that return a value or throw a MusterError; the caller's identity
 * is their last argument.
 */
import type {
  sendUnaryData,
  ServerUnaryCall,
  ServerWritableStream,
  ServerDuplexStream,
  Metadata,
} from '@grpc/grpc-js';
import type { Counter, Histogram } from '@opentelemetry/api';
import type { Identity } from '@muster/contracts';
import { toGrpcError, toMusterError, type Metrics } from '@muster/common';
import { authorize } from './access.js';
import { authenticate, type AuthenticatedCall } from './authenticate.js';
import { pageKey } from './pages.js';
import { tracedCall } from './rpc-tracing.js';

export interface RpcContext {
  token: string;
  rpcCount: Counter;
  rpcLatency: Histogram;
  /** Signs the list APIs' page tokens (pages.ts). */
  pageKey: Buffer;
}

export function rpcContext(token: string, metrics: Metrics): RpcContext {
  return {
    token,
    pageKey: pageKey(token),
    rpcCount: metrics.meter.createCounter('muster_rpc_total', { description: 'gRPC calls handled by the head, by method and result code' }),
    rpcLatency: metrics.meter.createHistogram('muster_rpc_duration_seconds', {
      description: 'gRPC call latency (streams: until the stream ends)',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5] },
    }),
  };
}

/** The caller's identity, once it may call this method with this request (else throws). */
function admit(ctx: RpcContext, call: AuthenticatedCall & { getPath(): string }, request?: unknown): Identity {
  const who = authenticate(call, ctx.token);
  authorize(who, call.getPath(), request);
  return who;
}

function record(ctx: RpcContext, method: string, started: number, code: string): void {
  ctx.rpcCount.add(1, { method, code });
  ctx.rpcLatency.record((performance.now() - started) / 1000, { method });
}

export function unary<Req, Res>(ctx: RpcContext, method: string, handler: (req: Req, md: Metadata, who: Identity) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const started = performance.now();
    (async () => {
      const who = admit(ctx, call, call.request);
      // Traced only once admitted: a caller that is refused adds no span (it is counted below).
      return tracedCall(call.getPath(), call.metadata, () => handler(call.request, call.metadata, who), (e) => toMusterError(e).code);
    })().then(
      (res) => {
        record(ctx, method, started, 'OK');
        callback(null, res);
      },
      (e: unknown) => {
        record(ctx, method, started, toMusterError(e).code);
        callback(toGrpcError(e));
      },
    );
  };
}

export function serverStream<Req, Res>(ctx: RpcContext, method: string, handler: (call: ServerWritableStream<Req, Res>, who: Identity) => Promise<void>) {
  return (call: ServerWritableStream<Req, Res>) => {
    const started = performance.now();
    (async () => {
      const who = admit(ctx, call, call.request);
      await handler(call, who);
    })().then(
      () => {
        record(ctx, method, started, 'OK');
        call.end();
      },
      (e: unknown) => {
        record(ctx, method, started, toMusterError(e).code);
        call.emit('error', toGrpcError(e));
      },
    );
  };
}

export function bidiStream<Req, Res>(ctx: RpcContext, method: string, handler: (call: ServerDuplexStream<Req, Res>, who: Identity) => Promise<void>) {
  return (call: ServerDuplexStream<Req, Res>) => {
    const started = performance.now();
    (async () => {
      const who = admit(ctx, call);
      await handler(call, who);
    })().then(
      () => record(ctx, method, started, 'OK'),
      (e: unknown) => {
        record(ctx, method, started, toMusterError(e).code);
        call.emit('error', toGrpcError(e));
      },
    );
  };
}
