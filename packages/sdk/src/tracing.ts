/**
 * The SDK's side of traced control calls: a gRPC client interceptor on every
 * client the SDK makes (endpoints.ts). With a tracer provider registered in
 * the application, each attempt of a call is a CLIENT span
 * "muster.rpc <Service>/<Method>" under the application's active span, and
 * its W3C trace context goes to the head in the call's metadata (the head
 * continues it: head/src/api/rpc-tracing.ts; a gang launch then carries it
 * on to the agents).
 *
 * The SDK loads no trace SDK: an application that wants these spans
 * registers its own provider (or none, and nothing is made: the interceptor
 * passes the call through after one check). Streams (watches, log tails) are
 * passed through untraced: a span of hours says nothing.
 */
import { InterceptingCall, status as Status, type Interceptor } from '@grpc/grpc-js';
import { endSpan, fromGrpcError, injectMetadata, otelContext, otelTrace, rpcAttributes, rpcName, SpanKind, startSpan, tracingOn } from '@muster/common';

export const traceInterceptor: Interceptor = (options, nextCall) => {
  const def = options.method_definition;
  if (!tracingOn() || def.requestStream || def.responseStream) return new InterceptingCall(nextCall(options));
  const span = startSpan(`muster.rpc ${rpcName(def.path)}`, SpanKind.CLIENT, rpcAttributes(def.path));
  if (!span) return new InterceptingCall(nextCall(options));
  const ctx = otelTrace.setSpan(otelContext.active(), span);
  return new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      // A copy: the SDK shares one Metadata (the cluster's credentials) between all calls.
      next(injectMetadata(metadata, ctx), {
        onReceiveStatus(status, pass) {
          endSpan(span, status.code === Status.OK ? 'OK' : fromGrpcError(status).code, status.details);
          pass(status);
        },
      });
    },
  });
};
