/**
 * Cluster events: persisted in the state store under /muster/events/ (the
 * newest `retention`, none older than `maxAgeMs`), published on NATS as
 * msgpack ("<prefix>.events.<kind>"), and fanned out in process to gRPC
 * WatchEvents streams.
 *
 * Ids come from a hybrid logical clock (event-id.ts) that `load()` starts
 * after the newest stored id, so they never go backwards across leaders,
 * clock steps or restarts, and a watcher resumes with `afterId` without
 * skipping or repeating an event. Every store read is a page. Events are written
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
import { EventIds } from './event-id.js';

export const EVENTS_PREFIX = '/muster/events/';
/** Events older than this are deleted unless the head is told otherwise (--event-max-age-ms). */
export const DEFAULT_MAX_AGE_MS = 86_400_000;
/** Events read or deleted per store request. */
const PAGE = 100;

/**
 * A count trim starts after this many new events: a tenth of the retention,
 * at most 1,000. So the stored events stay within about 110% of `retention`
 * (the new ones written while a trim runs aside) at any retention — a fixed
 * 1,000 let a retention of 2,000 swing between 2,000 and 3,000+.
 */
export function trimEvery(retention: number): number {
  return Math.max(1, Math.min(1_000, Math.ceil(retention / 10)));
}
/** Age trimming runs this often even when no events are written. */
const AGE_TRIM_INTERVAL_MS = 60_000;

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

export interface EventLogOptions {
  /** Events kept at most (the oldest go first). */
  retention: number;
  /** Events older than this (by `timeMs`) are deleted; default 24 h. */
  maxAgeMs?: number;
  nats?: NatsConnection | undefined;
  subjectPrefix: string;
  /** The wall clock (tests step it). */
  clock?: () => number;
}

export class EventLog {
  private readonly ids: EventIds;
  private readonly clock: () => number;
  private sinceTrim = 0;
  /** Events in the store: counted by `load()` (page by page), then kept by adding what is written. */
  private stored: number | undefined;
  private ageTimer: NodeJS.Timeout | undefined;
  private trimming = false;
  private readonly listeners = new Set<Listener>();
  /** Events not yet released, in id order. */
  private readonly order: Pending[] = [];
  private batch: Pending[] = [];
  private flushing = false;

  constructor(
    private readonly writer: StateWriter,
    private readonly log: Logger,
    private readonly opts: EventLogOptions,
  ) {
    this.clock = opts.clock ?? Date.now;
    this.ids = new EventIds(this.clock);
  }

  /**
   * Reads the stored events page by page: counts them and starts the id
   * clock after the newest, so this term's ids follow every earlier term's.
   * Call once, before the first event; then age trimming runs on a timer.
   */
  async load(): Promise<void> {
    let count = 0;
    let after: string | undefined;
    for (;;) {
      const { kvs } = await this.writer.store.range(EVENTS_PREFIX, { limit: PAGE, after });
      const last = kvs.at(-1)?.key;
      if (last === undefined || (after !== undefined && last <= after)) break; // no page, or a store that does not move on
      count += kvs.length;
      after = last;
      if (kvs.length < PAGE) break;
    }
    if (after !== undefined) this.ids.resumeAfter(after.slice(EVENTS_PREFIX.length));
    this.stored = count;
    this.ageTimer = setInterval(() => this.startTrim(), AGE_TRIM_INTERVAL_MS).unref();
    this.startTrim();
  }

  /** Stops the age-trimming timer (the leader term ended). */
  close(): void {
    clearInterval(this.ageTimer);
  }

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

  /** Retained events with id > afterId ("" = all), oldest first, read a page at a time. */
  async *pages(afterId = ''): AsyncGenerator<ClusterEvent[]> {
    let after = afterId === '' ? undefined : EVENTS_PREFIX + afterId;
    for (;;) {
      const { kvs } = await this.writer.store.range(EVENTS_PREFIX, { limit: PAGE, after });
      const last = kvs.at(-1)?.key;
      if (last === undefined || (after !== undefined && last <= after)) return; // no page, or a store that does not move on
      yield kvs.map((kv) => ClusterEvent.decode(kv.value));
      if (kvs.length < PAGE) return;
      after = last;
    }
  }

  /** Retained events with id > afterId ("" = all), oldest first (at most `retention`). */
  async history(afterId = ''): Promise<ClusterEvent[]> {
    const out: ClusterEvent[] = [];
    for await (const page of this.pages(afterId)) out.push(...page);
    return out;
  }

  /** Live events from now on; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private open(kind: string, fields: EventFields): Pending {
    const event: ClusterEvent = {
      id: this.ids.next(),
      timeMs: this.clock(),
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
    // node.dead is warned once per liveness sweep by the registry (a storm
    // is one line with the count, not one per node): here it is debug.
    const level = e.kind.startsWith('node.') && e.kind !== 'node.dead' ? 'info' : 'debug';
    this.log[level]({ event: e.kind, nodeId: e.nodeId || undefined, attributes: e.attributes }, e.message);
    for (const l of this.listeners) l(e);
    this.opts.nats?.publish(eventSubject(this.opts.subjectPrefix, e.kind), encode(ClusterEvent.toJSON(e)));
    p.resolve?.(e);
    if (++this.sinceTrim >= trimEvery(this.opts.retention)) this.startTrim();
  }

  private startTrim(): void {
    if (this.trimming || this.stored === undefined) return;
    this.sinceTrim = 0;
    this.trimming = true;
    // trim() catches its own store failures; anything else is logged and the next trigger retries.
    this.trim()
      .catch((e: unknown) => this.log.error({ err: e }, 'event trim threw; retried by the next trigger'))
      .finally(() => (this.trimming = false));
  }

  /**
   * Deletes the oldest events while there are more than `retention` or they
   * are older than `maxAgeMs`: reads a page of the oldest, deletes the ones
   * to go, and stops at the first one to keep.
   */
  private async trim(): Promise<void> {
    try {
      for (;;) {
        const cutoff = this.clock() - (this.opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS);
        const { kvs } = await this.writer.store.range(EVENTS_PREFIX, { limit: PAGE });
        let n = 0;
        while (n < kvs.length && (this.stored! - n > this.opts.retention || ClusterEvent.decode(kvs[n]!.value).timeMs < cutoff)) n++;
        if (n === 0) return;
        await this.writer.txn(kvs.slice(0, n).map((kv) => ({ type: 'delete' as const, key: kv.key })));
        this.stored! -= n;
        if (n < kvs.length) return;
      }
    } catch (e) {
      this.log.warn({ err: e }, 'could not trim old cluster events; will retry');
    }
  }
}

function putOp(e: ClusterEvent): Op {
  return { type: 'put', key: EVENTS_PREFIX + e.id, value: ClusterEvent.encode(e).finish() };
}
