/**
 * Small helpers both ends of the data plane share: the "no responders" test,
 * the mapping of wire errors to MusterError, and the connection's payload
 * limit. The message shapes are in
 * types.ts; subjects and the load/demand reports are @muster/contracts'
 * (subjects.ts), which the head reads too.
 */
import { ErrorCode, MusterError, type NatsConnection } from '@muster/common';
import type { Msg } from '@nats-io/transport-node';
import type { WireError } from './types.js';

/**
 * The NATS server's answer to a request published on a subject nobody
 * subscribes to: an empty message with status 503. It proves the request
 * reached no replica, so it is always safe to send it elsewhere.
 */
export function isNoResponders(msg: Msg): boolean {
  return msg.data.length === 0 && msg.headers?.code === 503;
}

const knownCodes = new Set<string>(Object.values(ErrorCode));

/** A replica's error as the caller sees it; codes we don't know become APPLICATION. */
export function errorFromWire(e: WireError | undefined, replicaId: string): MusterError {
  const code = typeof e?.code === 'string' && knownCodes.has(e.code) ? (e.code as ErrorCode) : ErrorCode.APPLICATION;
  const message = typeof e?.message === 'string' ? e.message : 'replica sent a malformed error';
  return new MusterError(code, message, { details: { replicaId, remoteCode: e?.code } });
}

export function wireError(code: ErrorCode, message: string): WireError {
  return { code, message };
}

/**
 * The largest message this connection may publish: the max_payload its
 * server announced (nats-server's default is 1 MiB; a cluster may lower or
 * raise it). nats.js refuses a larger publish with a plain "max_payload size
 * exceeded", which names neither size; both ends check first and say so.
 * Undefined before the first server INFO (then nothing can be sent anyway).
 */
export function maxPayloadOf(nc: NatsConnection): number | undefined {
  return nc.info?.max_payload;
}

/** The words of a payload-limit error: what, how large, the limit. */
export function tooLargeMessage(what: string, bytes: number, limit: number): string {
  return `${what} is ${bytes} bytes encoded, more than the NATS max_payload of ${limit} bytes`;
}
