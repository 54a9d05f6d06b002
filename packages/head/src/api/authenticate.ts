/**
 * Who is calling: the one way a head turns a gRPC call into an Identity.
 *
 0. A bearer token that is sent must be the cluster token, whatever else the
 *    call shows (UNAUTHENTICATED "wrong cluster token" otherwise).
 * 1. A client certificate that verified against the cluster CA (grpc-js hands
 *    a handler the peer certificate only when the TLS socket is authorized:
 *    a certificate of another CA, an expired one or none gives nothing here)
 *    → the identity it carries (role, name, call rights). It wins over the
 *    token sent beside it: a node's agent is bound to its node id even if it
 *    also holds the token.
 * 2. Else the cluster token as `authorization: Bearer <token>` → an admin
 *    (TOKEN_IDENTITY, the break-glass credential).
 * 3. Else UNAUTHENTICATED, saying what to send.
 * What the identity may do is access.ts's business.
 */
import { timingSafeEqual } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type { Metadata } from '@grpc/grpc-js';
import { TOKEN_IDENTITY, type Identity } from '@muster/contracts';
import { AUTH_HEADER, bearerToken, ErrorCode, MusterError, identityOf } from '@muster/common';

/** What authentication reads of a call (every grpc-js server call has both). */
export interface AuthenticatedCall {
  readonly metadata: Metadata;
  /** grpc-js's AuthContext (not exported by name): the peer certificate of an authorized TLS socket. */
  getAuthContext(): { sslPeerCertificate?: PeerCertificate };
}

const HOW =
  'present a client certificate of the cluster CA (--tls-cert/--tls-key) or send "authorization: Bearer <token>" ' +
  '(the cluster token: file "token" in the head\'s data dir). A certificate another CA signed, or an expired one, counts as none';

export function authenticate(call: AuthenticatedCall, token: string): Identity {
  const tokenSent = sentToken(call.metadata);
  // A wrong token is refused even beside a good certificate: a credential that fails is a mistake to report, not to skip.
  if (tokenSent !== undefined && !sameToken(tokenSent, token)) throw new MusterError(ErrorCode.UNAUTHENTICATED, 'wrong cluster token');
  const fromCert = certificateIdentity(call);
  if (fromCert) return fromCert;
  if (tokenSent !== undefined) return TOKEN_IDENTITY;
  throw new MusterError(ErrorCode.UNAUTHENTICATED, `no client certificate and missing cluster token: ${HOW}`);
}

/**
 * The identity of the call's TLS connection, worked out once per connection:
 * grpc-js builds the peer certificate anew for every call (about 20 µs, the
 * largest part of TLS's cost per call here), and a connection's certificate
 * does not change under it. Keyed weakly by the socket, so a closed
 * connection's entry goes with it. grpc-js does not expose the socket by
 * name; when its shape differs, every call is worked out afresh (correct,
 * only slower).
 */
const byConnection = new WeakMap<object, Identity | undefined>();

function certificateIdentity(call: AuthenticatedCall): Identity | undefined {
  const socket = (call as { call?: { stream?: { session?: { socket?: unknown } } } }).call?.stream?.session?.socket;
  const key = typeof socket === 'object' && socket !== null ? socket : undefined;
  if (key && byConnection.has(key)) return byConnection.get(key);
  const identity = identityOf(call.getAuthContext().sslPeerCertificate);
  if (key) byConnection.set(key, identity);
  return identity;
}

function sentToken(md: Metadata): Buffer | undefined {
  const token = bearerToken(md.get(AUTH_HEADER)[0]);
  return token === undefined ? undefined : Buffer.from(token);
}

function sameToken(given: Buffer, token: string): boolean {
  const want = Buffer.from(token);
  // An empty configured token never matches (the head refuses to start on one; this is the second lock).
  return want.length > 0 && given.length === want.length && timingSafeEqual(given, want);
}
