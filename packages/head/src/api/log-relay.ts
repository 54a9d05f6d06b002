/**
 * Relays shard logs from workers to `StreamLogs` callers: the head asks the
 * rank's agent for the log over its stream (LogRequest), the agent answers
 * with chunks (AgentLogChunk), the relay hands them to the waiting call.
 *
 * Flow control by credits: the agent's stream cannot be paused from here
 * (heartbeats share it), so each request carries a window (LOG_WINDOW_BYTES):
 * the agent has at most that many bytes sent and not credited back, and the
 * relay credits a chunk's bytes (LogCredit) once its reader took it. A slow
 * reader thus slows the agent's read, and the relay holds at most a window
 * per request. An agent that predates credits ignores the window: for it the
 * relay holds at most MAX_RELAY_BYTES and then cuts the reader with
 * MUSTER_CONSUMER_TOO_SLOW, telling the agent to stop. A tail is at most
 * MAX_TAIL_BYTES.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { AgentLogChunk, HeadMessage } from '@muster/proto';
import type { NodeRegistry } from '../cluster/registry.js';

/** Log bytes held for one caller that is slower than the agent sends them. */
export const MAX_RELAY_BYTES = 8 * 1024 * 1024;
/** Log bytes one request may have in flight from the agent, not yet taken by its reader. */
export const LOG_WINDOW_BYTES = 1024 * 1024;
/** The largest tail one request may ask for. */
export const MAX_TAIL_BYTES = 4 * 1024 * 1024;

interface Sink {
  nodeId: string;
  push(chunk: AgentLogChunk): void;
}

export class LogRelay {
  private nextId = 1;
  private readonly sinks = new Map<number, Sink>();

  constructor(private readonly registry: NodeRegistry) {}

  /** Streams a rank's log; ends at EOF (no follow) or when `signal` aborts. */
  async *open(nodeId: string, req: { gangId: string; attempt: number; rank: number; tailBytes: number; follow: boolean }, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    if (req.tailBytes > MAX_TAIL_BYTES) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `tail_bytes ${req.tailBytes} is over the limit of ${MAX_TAIL_BYTES}`, { details: { field: 'tailBytes' } });
    }
    const conn = this.registry.connection(nodeId);
    if (!conn) throw new MusterError(ErrorCode.UNAVAILABLE, `node ${nodeId} is not connected; its logs cannot be read now`);
    const requestId = this.nextId++;
    const queue: AgentLogChunk[] = [];
    let queuedBytes = 0;
    let overflow = false;
    let wake: (() => void) | undefined;
    this.sinks.set(requestId, {
      nodeId,
      push: (c) => {
        if (overflow) return;
        queuedBytes += c.data.length;
        if (queuedBytes > MAX_RELAY_BYTES) overflow = true;
        else queue.push(c);
        wake?.();
      },
    });
    const send = (msg: HeadMessage) => this.registry.connection(nodeId)?.send(msg);
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    send({ msg: { $case: 'logRequest', value: { requestId, ...req, windowBytes: LOG_WINDOW_BYTES } } });
    try {
      while (!signal.aborted) {
        const c = queue.shift();
        if (c) queuedBytes -= c.data.length;
        else if (overflow) {
          throw new MusterError(ErrorCode.CONSUMER_TOO_SLOW, `consumer too slow: more than ${MAX_RELAY_BYTES} bytes of this log waited for the reader; open it again (a tail, or follow from now)`);
        }
        if (!c) {
          await new Promise<void>((r) => (wake = r));
          continue;
        }
        if (c.error) throw new MusterError(ErrorCode.NOT_FOUND, c.error);
        if (c.data.length > 0) {
          yield c.data;
          // The reader took it (the caller asks for the next one only then): the agent may send as much again.
          send({ msg: { $case: 'logCredit', value: { requestId, bytes: c.data.length } } });
        }
        if (c.eof) return;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.sinks.delete(requestId);
      send({ msg: { $case: 'logCancel', value: { requestId } } });
    }
  }

  chunk(nodeId: string, c: AgentLogChunk): void {
    const sink = this.sinks.get(c.requestId);
    if (sink?.nodeId === nodeId) sink.push(c);
  }
}
