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
import type { StateStore } from '../state/index.js';

export const EVENTS_PREFIX = '/muster/events/';

type Listener = (e: ClusterEvent) => void;

export class EventLog {
  private seq = 0;
  private lastMs = 0;
  private appended = 0;
  private readonly listeners = new Set<Listener>();

  constructor(
    private readonly store: StateStore,
    private readonly log: Logger,
    private readonly opts: { retention: number; nats?: NatsConnection | undefined; subjectPrefix: string },
  ) {}

  /** Records an event; resolves once it is durable in the store. */
  async append(kind: string, fields: { nodeId?: string; message: string; attributes?: Record<string, string> }): Promise<ClusterEvent> {
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
    await this.store.put(EVENTS_PREFIX + event.id, ClusterEvent.encode(event).finish());
    this.log.info({ event: kind, nodeId: event.nodeId || undefined, attributes: fields.attributes }, fields.message);
    for (const l of this.listeners) l(event);
    this.opts.nats?.publish(eventSubject(this.opts.subjectPrefix, kind), encode(ClusterEvent.toJSON(event)));
    if (++this.appended % 500 === 0) void this.trim();
    return event;
  }

  /** Retained events with id > afterId ("" = all), oldest first. */
  async history(afterId = ''): Promise<ClusterEvent[]> {
    const { kvs } = await this.store.range(EVENTS_PREFIX);
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
      const { kvs } = await this.store.range(EVENTS_PREFIX);
      const excess = kvs.length - this.opts.retention;
      if (excess <= 0) return;
      await this.store.txn({ compare: [], success: kvs.slice(0, excess).map((kv) => ({ type: 'delete' as const, key: kv.key })) });
    } catch (e) {
      this.log.warn({ err: e }, 'could not trim old cluster events; will retry');
    }
  }
}
