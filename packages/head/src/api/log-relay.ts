/**
 * Relays shard logs from workers to `StreamLogs` callers: the head asks the
 * rank's agent for the log over its stream (LogRequest), the agent answers
 * with chunks (AgentLogChunk), the relay hands them to the waiting call.
 * Nothing is buffered beyond what is in flight.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { AgentLogChunk, HeadMessage } from '@muster/proto';
import type { NodeRegistry } from '../cluster/registry.js';

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
    const conn = this.registry.connection(nodeId);
    if (!conn) throw new MusterError(ErrorCode.UNAVAILABLE, `node ${nodeId} is not connected; its logs cannot be read now`);
    const requestId = this.nextId++;
    const queue: AgentLogChunk[] = [];
    let wake: (() => void) | undefined;
    this.sinks.set(requestId, {
      nodeId,
      push: (c) => {
        queue.push(c);
        wake?.();
      },
    });
    const send = (msg: HeadMessage) => this.registry.connection(nodeId)?.send(msg);
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    send({ msg: { $case: 'logRequest', value: { requestId, ...req } } });
    try {
      while (!signal.aborted) {
        const c = queue.shift();
        if (!c) {
          await new Promise<void>((r) => (wake = r));
          continue;
        }
        if (c.error) throw new MusterError(ErrorCode.NOT_FOUND, c.error);
        if (c.data.length > 0) yield c.data;
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
