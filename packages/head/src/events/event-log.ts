/**
 * Cluster events: persisted in the state store under /muster/events/ (the last
 * `retention` kept), published on NATS as msgpack ("<prefix>.events.<kind>"),
 * and fanned out in process to gRPC WatchEvents streams.
 *
 * Ids sort in time order: 13-digit ms timestamp, "-", 6-digit sequence, so a
 * watcher can resume with `afterId` across head restarts.
 */
import { encode, eventSubject, type Logger, type NatsConnection } from '@muster/common';
import { ClusterEvent } from '@muster/proto';
import type { StateWriter } from '../state/fence.js';

export const EVENTS_PREFIX = '/muster/events/';

type Listener = (e: ClusterEvent) => void;

export class EventLog {
  private seq = 0;
  private lastMs = 0;
  private appended = 0;
  private readonly listeners = new Set<Listener>();
  private flushing = false;
  private readonly batch: Array<{ event: ClusterEvent; resolve: (e: ClusterEvent) => void; reject: (e: unknown) => void }> = [];

  constructor(
    private readonly writer: StateWriter,
    private readonly log: Logger,
    private readonly opts: { retention: number; nats?: NatsConnection | undefined; subjectPrefix: string },
  ) {}

  /**
   * Records an event; resolves once it is durable in the store. Events
   * appended in the same tick are written in one transaction.
   */
  append(kind: string, fields: { nodeId?: string; message: string; attributes?: Record<string, string> }): Promise<ClusterEvent> {
    const now = Date.now();
    this.seq = now === this.lastMs ? this.seq + 1 : 0;
    this.lastMs = now;
    const event: ClusterEvent = {
      id: `${String(now).padStart(13, '0')}-${String(this.seq).padStart(6, '0')}`,
      timeMs: now,
      kind,
      nodeId: fields.nodeId ?? '',
      message: fields.message,
      attributes: fields.attributes ?? {},
    };
    return new Promise<ClusterEvent>((resolve, reject) => {
      this.batch.push({ event, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Writes batches one after another, so listeners see events in id order. */
  private async flush(): Promise<void> {
    while (this.batch.length > 0) await this.flushBatch(this.batch.splice(0, 100)); // etcd: ≤ 128 ops per txn
    this.flushing = false;
  }

  private async flushBatch(batch: typeof this.batch): Promise<void> {
    try {
      await this.writer.txn(batch.map(({ event }) => ({ type: 'put' as const, key: EVENTS_PREFIX + event.id, value: ClusterEvent.encode(event).finish() })));
    } catch (e) {
      for (const b of batch) b.reject(e);
      return;
    }
    for (const { event, resolve } of batch) {
      this.log.info({ event: event.kind, nodeId: event.nodeId || undefined, attributes: event.attributes }, event.message);
      for (const l of this.listeners) l(event);
      this.opts.nats?.publish(eventSubject(this.opts.subjectPrefix, event.kind), encode(ClusterEvent.toJSON(event)));
      resolve(event);
    }
    this.appended += batch.length;
    if (this.appended >= 500) {
      this.appended = 0;
      void this.trim();
    }
  }

  /** Retained events with id > afterId ("" = all), oldest first. */
  async history(afterId = ''): Promise<ClusterEvent[]> {
    const { kvs } = await this.writer.store.range(EVENTS_PREFIX);
    return kvs
      .filter((kv) => kv.key.slice(EVENTS_PREFIX.length) > afterId)
      .map((kv) => ClusterEvent.decode(kv.value));
  }

  /** Live events from now on; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private async trim(): Promise<void> {
    try {
      const { kvs } = await this.writer.store.range(EVENTS_PREFIX);
      const old = kvs.slice(0, Math.max(0, kvs.length - this.opts.retention));
      // etcd caps a transaction at 128 operations.
      for (let i = 0; i < old.length; i += 100) {
        await this.writer.txn(old.slice(i, i + 100).map((kv) => ({ type: 'delete' as const, key: kv.key })));
      }
    } catch (e) {
      this.log.warn({ err: e }, 'could not trim old cluster events; will retry');
    }
  }
}
