/**
 * The gRPC services of a head stay bound for its whole life; what answers
 * behind them changes with leadership. `LeaderGate` holds the current term's
 * service implementations: while this head leads, calls pass through to
 * them (which authenticate and authorize each call: api/rpc.ts); while it
 * stands by, every call is authenticated and authorized as the leader would
 * (a stranger learns nothing, not even where the leader is) and then refused
 * with MUSTER_NOT_LEADER carrying the leader's address, which the SDK and the
 * agents follow. When a term ends, its open streams (agent sessions,
 * event and membership watches) are ended with the same refusal, so their
 * clients reconnect to the new leader instead of hanging on a deposed one.
 */
import type { ServiceDefinition, UntypedHandleCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { ErrorCode, MusterError, toGrpcError } from '@muster/common';
import { authorize } from '../api/access.js';
import { authenticate, type AuthenticatedCall } from '../api/authenticate.js';

interface StreamCall extends AuthenticatedCall {
  /** A unary or server-stream call's request (the access table reads a caller's group from it). */
  readonly request?: unknown;
  emit(event: string, ...args: unknown[]): boolean;
  once(event: string, listener: () => void): unknown;
}

export class LeaderGate {
  private impls: Map<ServiceDefinition, UntypedServiceImplementation> | undefined;
  private readonly streams = new Set<StreamCall>();

  constructor(
    private readonly token: string,
    /** Why this head does not lead, and where the leader is (if known). */
    private readonly refusal: () => MusterError,
  ) {}

  get leading(): boolean {
    return this.impls !== undefined;
  }

  /** Serves `impls` from now on (this head won an election). */
  open(impls: Map<ServiceDefinition, UntypedServiceImplementation>): void {
    this.impls = impls;
  }

  /** Stops serving: new calls are refused and open streams ended with the refusal. */
  close(): void {
    this.impls = undefined;
    const err = toGrpcError(this.refusal());
    for (const call of [...this.streams]) {
      call.emit('error', err);
      // Handlers stop their loops on 'cancelled' (the client went away); this one did, from our side.
      call.emit('cancelled');
    }
    this.streams.clear();
  }

  /** The implementation to register for `service`: forwards to the term, or refuses. */
  serve(service: ServiceDefinition): UntypedServiceImplementation {
    const handlers: UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(service)) {
      const streaming = method.responseStream || method.requestStream;
      // One untyped forwarder per method: the typed handlers behind it are the term's own.
      handlers[name] = (streaming
        ? (call: StreamCall) => {
            const impl = this.check(call, service, name);
            if (impl instanceof MusterError) {
              call.emit('error', toGrpcError(impl));
              return;
            }
            this.streams.add(call);
            const forget = () => this.streams.delete(call);
            call.once('close', forget);
            call.once('finish', forget);
            call.once('cancelled', forget);
            (impl as (c: StreamCall) => void)(call);
          }
        : (call: StreamCall, callback: (err: unknown) => void) => {
            const impl = this.check(call, service, name);
            if (impl instanceof MusterError) callback(toGrpcError(impl));
            else (impl as (c: StreamCall, cb: (err: unknown) => void) => void)(call, callback);
          }) as UntypedHandleCall;
    }
    return handlers;
  }

  private check(call: StreamCall, service: ServiceDefinition, name: string): MusterError | ((...args: never[]) => void) {
    const impl = this.impls?.get(service)?.[name];
    // A leader's handlers check the caller themselves (and count refusals in the rpc metric).
    if (impl) return impl as (...args: never[]) => void;
    try {
      authorize(authenticate(call, this.token), service[name]!.path, call.request);
    } catch (e) {
      return e as MusterError;
    }
    return this.impls ? new MusterError(ErrorCode.INTERNAL, `method ${name} is not implemented`) : this.refusal();
  }
}
