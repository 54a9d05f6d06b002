/**
 * Cluster events: persisted in the state store under /muster/events/ (the last
 * `retention` kept), published on NATS as msgpack ("<prefix>.events.<kind>"),
 * and fanned out in process to gRPC WatchEvents streams.
 *
 * Ids sort in time order: 13-digit ms timestamp, "-", 6-digit sequence, so a
 * watcher can resume with `afterId` across head restarts. Events are written
 * either on their own (`append`, batched per tick) or inside a caller's
 * transaction (`stage`, so a state change and its event cost one write), and
 * are released to listeners and NATS strictly in id order, once durable: a
 * watcher never sees an id lower than one it already has.
 */
import { encode, type Logger, type NatsConnection } from '@muster/common';
import { eventSubject } from '@muster/contracts';
import { ClusterEvent } from '@muster/proto';
import type { StateWriter } from '../state/fence.js';
import type { Op } from '../state/index.js';

export const EVENTS_PREFIX = '/muster/events/';

type Listener = (e: ClusterEvent) => void;
export type EventFields = { nodeId?: string; message: string; attributes?: Record<string, string> };

interface Pending {
  event: ClusterEvent;
  state: 'pending' | 'durable' | 'failed';
  resolve?: (e: ClusterEvent) => void;
  reject?: (e: unknown) => void;
}

/** An event to be written inside the caller's transaction. */
export interface StagedEvent {
  readonly op: Op;
  /** Call once the caller's transaction committed (true) or failed (false). */
  settle(committed: boolean): void;
}

export class EventLog {
  private seq = 0;
  private lastMs = 0;
  private sinceTrim = 0;
  /** Events in the store, once the first trim of this log has counted them; kept by adding what is written. */
  private stored: number | undefined;
  private trimming = false;
  private readonly listeners = new Set<Listener>();
  /** Events not yet released, in id order. */
  private readonly order: Pending[] = [];
  private batch: Pending[] = [];
  private flushing = false;

  constructor(
    private readonly writer: StateWriter,
    private readonly log: Logger,
    private readonly opts: { retention: number; nats?: NatsConnection | undefined; subjectPrefix: string },
  ) {}

  /** Records an event; resolves once it is durable. Appends of one tick share a transaction. */
  append(kind: string, fields: EventFields): Promise<ClusterEvent> {
    const p = this.open(kind, fields);
    return new Promise<ClusterEvent>((resolve, reject) => {
      p.resolve = resolve;
      p.reject = reject;
      this.batch.push(p);
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => {
          // flush() rejects each batch's appends itself; this keeps a bug in it visible and lets the next append flush.
          this.flush().catch((e: unknown) => {
            this.flushing = false;
            this.log.error({ err: e }, 'event flush threw; the next append flushes again');
          });
        });
      }
    });
  }

  /** An event for the caller to write in its own transaction (see StagedEvent). */
  stage(kind: string, fields: EventFields): StagedEvent {
    const p = this.open(kind, fields);
    return { op: putOp(p.event), settle: (ok) => this.settle([p], ok) };
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

  private open(kind: string, fields: EventFields): Pending {
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
      replayEnd: false,
    };
    const p: Pending = { event, state: 'pending' };
    this.order.push(p);
    return p;
  }

  private async flush(): Promise<void> {
    while (this.batch.length > 0) {
      const batch = this.batch.splice(0, 100); // etcd caps a transaction at 128 operations
      try {
        await this.writer.txn(batch.map((p) => putOp(p.event)));
        this.settle(batch, true);
      } catch (e) {
        for (const p of batch) p.reject?.(e);
        this.settle(batch, false);
      }
    }
    this.flushing = false;
  }

  /** Marks events durable (or failed) and releases every leading durable one, in order. */
  private settle(ps: Pending[], ok: boolean): void {
    for (const p of ps) p.state = ok ? 'durable' : 'failed';
    if (ok && this.stored !== undefined) this.stored += ps.length;
    while (this.order.length > 0 && this.order[0]!.state !== 'pending') {
      const p = this.order.shift()!;
      if (p.state === 'durable') this.release(p);
    }
  }

  private release(p: Pending): void {
    const e = p.event;
    // Node events are rare and matter to operators; the rest (thousands of
    // placement groups a second) stay queryable as events, not log lines.
    const level = e.kind === 'node.dead' ? 'warn' : e.kind.startsWith('node.') ? 'info' : 'debug';
    this.log[level]({ event: e.kind, nodeId: e.nodeId || undefined, attributes: e.attributes }, e.message);
    for (const l of this.listeners) l(e);
    this.opts.nats?.publish(eventSubject(this.opts.subjectPrefix, e.kind), encode(ClusterEvent.toJSON(e)));
    p.resolve?.(e);
    if (++this.sinceTrim >= 1_000 && !this.trimming) {
      this.sinceTrim = 0;
      this.trimming = true;
      // trim() catches its own failure (retried after the next 1,000 events).
      this.trim().catch((e: unknown) => this.log.error({ err: e }, 'event trim threw; retried after the next 1,000 events')).finally(() => (this.trimming = false));
    }
  }

  /** Deletes the oldest events beyond `retention`: reads only those, once the count is known. */
  private async trim(): Promise<void> {
    try {
      this.stored ??= (await this.writer.store.range(EVENTS_PREFIX)).kvs.length;
      const excess = this.stored - this.opts.retention;
      if (excess <= 0) return;
      const { kvs: old } = await this.writer.store.range(EVENTS_PREFIX, { limit: excess });
      for (let i = 0; i < old.length; i += 100) {
        await this.writer.txn(old.slice(i, i + 100).map((kv) => ({ type: 'delete' as const, key: kv.key })));
        this.stored -= Math.min(100, old.length - i);
      }
    } catch (e) {
      this.stored = undefined; // count again next time
      this.log.warn({ err: e }, 'could not trim old cluster events; will retry');
    }
  }
}

function putOp(e: ClusterEvent): Op {
  return { type: 'put', key: EVENTS_PREFIX + e.id, value: ClusterEvent.encode(e).finish() };
}
