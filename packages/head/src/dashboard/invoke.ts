/**
 * The dashboard's JSON API calls the head's own gRPC handlers in process,
 * through the same LeaderGate the gRPC server serves them through: every
 * answer is authenticated (authenticate.ts) and authorized (access.ts) as
 * the same gRPC call would be, paged by the same code, counted in the same
 * RPC metrics, and refused with MUSTER_NOT_LEADER on a standby. Nothing here
 * reads the registry or a controller directly, so the dashboard cannot show
 * what its viewer could not ask for over gRPC.
 *
 * A call is a small stand-in for grpc-js's call object: the request, the
 * metadata (the cluster token, when that is the browser's credential) and the
 * peer certificate of the browser's TLS connection (when that is). Server
 * streams get an EventEmitter with `write` (its return value is the HTTP
 * response's back-pressure), `end`, and the 'cancelled' / 'drain' events the
 * handlers and BoundedStream listen to.
 */
import { EventEmitter } from 'node:events';
import type { PeerCertificate } from 'node:tls';
import { Metadata, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { AUTH_HEADER, fromGrpcError } from '@muster/common';
import type { AuthenticatedCall } from '../api/authenticate.js';

/** What the browser showed: an authorized client certificate of the cluster CA, or the cluster token. */
export interface Credential {
  /** The peer certificate of a TLS socket that verified against the cluster CA. */
  readonly cert?: PeerCertificate;
  /** The browser proved it holds the cluster token (an admin). */
  readonly token?: boolean;
}

type Unary = (call: object, callback: (err: unknown, value?: unknown) => void) => void;
type Streaming = (call: object) => void;

export class GateInvoker {
  constructor(
    /** The gate's handlers per service (LeaderGate.serve), the ones the gRPC server has. */
    private readonly handlers: ReadonlyMap<ServiceDefinition, UntypedServiceImplementation>,
    private readonly token: string,
  ) {}

  /** One unary call as `cred`; rejects with the MusterError the handler raised. */
  unary<Res>(service: ServiceDefinition, method: string, request: unknown, cred: Credential): Promise<Res> {
    const handler = this.handler(service, method) as Unary;
    return new Promise<Res>((resolve, reject) => {
      handler(this.call(service, method, request, cred), (err, value) => (err ? reject(fromGrpcError(err)) : resolve(value as Res)));
    });
  }

  /**
   * One server stream as `cred`: `write` gets each message and returns false
   * when its consumer is full (the stream then waits for `resume()`); `done`
   * settles when the handler ends, rejecting with its error. `cancel()` is
   * the consumer going away.
   */
  stream<Msg>(service: ServiceDefinition, method: string, request: unknown, cred: Credential, write: (m: Msg) => boolean): { done: Promise<void>; cancel(): void; resume(): void } {
    const handler = this.handler(service, method) as Streaming;
    const call = Object.assign(new EventEmitter(), this.call(service, method, request, cred), {
      cancelled: false,
      write: (m: Msg) => write(m),
      end: () => call.emit('finish'),
    });
    call.on('error', () => {}); // a handler's error settles `done` below; EventEmitter must not throw it
    const done = new Promise<void>((resolve, reject) => {
      call.once('finish', () => resolve());
      call.once('error', (e: unknown) => reject(fromGrpcError(e)));
    });
    handler(call);
    return {
      done,
      cancel: () => {
        if (call.cancelled) return;
        call.cancelled = true;
        call.emit('cancelled');
        call.emit('close');
        call.emit('finish');
      },
      resume: () => call.emit('drain'),
    };
  }

  private handler(service: ServiceDefinition, method: string): Unary | Streaming {
    const h = this.handlers.get(service)?.[method];
    if (!h) throw new Error(`no handler ${method}`); // a programming error: the route table names real methods
    return h as Unary | Streaming;
  }

  private call(service: ServiceDefinition, method: string, request: unknown, cred: Credential) {
    return { request, getPath: () => service[method]!.path, ...authCall(cred.cert, cred.token ? this.token : undefined) };
  }
}

/**
 * What authenticate() reads of a call (authenticate.ts), as grpc-js would
 * hand it: `bearer` as the authorization metadata, `cert` as the peer
 * certificate of an authorized TLS socket. The gate's calls and the
 * dashboard's own sign-in are authenticated through this one shape, so both
 * give the same identity for the same credentials.
 */
export function authCall(cert: PeerCertificate | undefined, bearer: string | undefined): AuthenticatedCall {
  const metadata = new Metadata();
  if (bearer !== undefined) metadata.set(AUTH_HEADER, `Bearer ${bearer}`);
  return { metadata, getAuthContext: () => (cert ? { sslPeerCertificate: cert } : {}) };
}
