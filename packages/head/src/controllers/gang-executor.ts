/**
 * The thin half of the gang controller: a plan (gang-plan.ts) handed to the
 * GroupCommit. The record is marked for the next commit and each step's event
 * staged in it; agent orders, timers and the entry's own bookkeeping
 * (`Durable`) are queued as after() actions, so they happen once that commit
 * is durable and never if it fails (group-commit.ts drops them). A collected
 * gang (gang-gc.ts) is a delete staged the same way; `CollectTimer` says when
 * the controller looks for one.
 */
import { contextOfFields, SpanKind, splitBySize, startSpan, traceFields, otelTrace, type Logger } from '@muster/common';
import { Gang, GangState, ShardLaunch, type HeadMessage, type TraceContext } from '@muster/proto';
import { PAGE_BYTES } from '@muster/contracts';
import { collectEveryMs, type Collection, type GangRetention } from './gang-gc.js';
import type { EventLog } from '../events/event-log.js';
import type { GangEvent, GangPlan } from './gang-plan.js';
import type { GroupCommit } from './group-commit.js';

export interface PlanSink {
  commits: GroupCommit;
  events: EventLog;
  send(nodeId: string, msg: HeadMessage): void;
  /** The NATS variables a replica group's ranks get in their launch order (minted then; see dataplane/nats-users.ts). */
  replicaCredentials?: ((group: string) => Record<string, string>) | undefined;
}

/** A launch order's ranks with their group's data-plane credential merged into their env (none for a plain gang). */
function withCredentials(sink: PlanSink, group: string | undefined, shards: ShardLaunch[]): ShardLaunch[] {
  if (!group || !sink.replicaCredentials) return shards;
  const creds = sink.replicaCredentials(group);
  return shards.map((s) => ({ ...s, env: { ...s.env, ...creds } }));
}

/** What an order adds around its ranks: gang id (≤ 253), attempt, trace context (W3C: ≤ 55 + 512). */
const ORDER_SLACK_BYTES = 4096;

/**
 * A node's ranks of one launch in orders of at most 1 MiB (PAGE_BYTES) encoded
 * (a rank larger than that alone; none is: its template is at most 512 KiB):
 * each rank carries its own copy of the template, so eight ranks of the
 * largest one in one order would pass even the 4 MiB message limit. An agent
 * starts each rank of each order on its own (shard-agent.ts `launch`), so one
 * node's ranks may come in several orders of the same gang and attempt.
 */
export function launchBatches(shards: ShardLaunch[], maxBytes: number = PAGE_BYTES - ORDER_SLACK_BYTES): ShardLaunch[][] {
  if (shards.length <= 1) return [shards];
  return splitBySize(shards, (s) => ShardLaunch.encode(s).finish().length + 5, maxBytes, 0); // + its tag and length in the order
}

/**
 * The trace context of a launch order: a PRODUCER span "muster.launch <gang>"
 * under the launching call's span, for the first attempt only (a restart is
 * the controller's doing, not the caller's). Undefined when not traced.
 */
function launchTrace(caller: TraceContext | undefined, g: Gang, name: string, nodeId: string, attempt: number): TraceContext | undefined {
  if (!caller || attempt > 1) return undefined;
  const parent = contextOfFields(caller);
  const span = startSpan(`muster.launch ${name}`, SpanKind.PRODUCER, { 'muster.gang': g.id, 'muster.gang_name': name, 'muster.node': nodeId, 'muster.attempt': attempt }, parent);
  if (!span) return undefined;
  const fields = traceFields(otelTrace.setSpan(parent, span));
  span.end();
  return fields;
}

/** What one gang's entry does once the plan is durable. */
export interface Durable {
  /** The trace of the call that launched the gang (its W3C fields), if traced (gangs.ts). */
  readonly trace?: TraceContext | undefined;
  clearTimer(): void;
  arm(ev: GangEvent, atMs: number): void;
  /** The plan's record is durable (`stateChanged`: it took a step of the lifecycle). */
  settled(g: Gang, stateChanged: boolean): void;
}

/**
 * Stages `plan` for the gang stored at `key` (`current` encodes the record as
 * it is at commit time); true if the gang's state changed, which its caller
 * then waits for.
 */
export function stagePlan(sink: PlanSink, key: string, current: () => Gang, name: string, plan: GangPlan, on: Durable): boolean {
  if (!plan.write && plan.actions.length === 0) return false;
  const { commits } = sink;
  const g = plan.gang;
  if (plan.write) commits.put(key, () => Gang.encode(current()).finish());
  let transitions = 0;
  for (const a of plan.actions) {
    switch (a.type) {
      case 'transition':
        transitions++;
        commits.stage(sink.events.stage(a.event, { message: `gang ${name}: ${a.reason}`, attributes: { gang: g.id, name, attempt: String(g.attempt), step: String(a.step) } }));
        commits.after(() => on.clearTimer());
        break;
      case 'launch':
        commits.after(() => {
          const trace = launchTrace(on.trace, g, name, a.nodeId, a.attempt);
          for (const shards of launchBatches(withCredentials(sink, g.spec?.replicaGroup, a.shards))) {
            sink.send(a.nodeId, { msg: { $case: 'launchShards', value: { gangId: g.id, attempt: a.attempt, shards, trace } } });
          }
        });
        break;
      case 'stop':
        commits.after(() => sink.send(a.nodeId, { msg: { $case: 'stopShards', value: { gangId: g.id, attempt: a.attempt, reason: a.reason } } }));
        break;
      case 'timer':
        commits.after(() => on.arm(a.fire === 'deadline' ? { type: 'deadline', attempt: a.attempt } : { type: 'backoffOver' }, a.atMs));
        break;
    }
  }
  const changed = transitions > 0;
  commits.after(() => on.settled(g, changed));
  commits.kick();
  return changed;
}

/** Stages the delete of a collected gang with its `gang.collected` event; `forget` runs once that is durable. */
export function stageCollection(sink: PlanSink, key: string, name: string, c: Collection, forget: () => void): void {
  const { gang, reason } = c;
  sink.commits.delete(key);
  sink.commits.stage(sink.events.stage('gang.collected', { message: `gang ${name} (${gang.id}) deleted: ${reason}`, attributes: { gang: gang.id, name, state: GangState[gang.state] } }));
  sink.commits.after(forget);
}

/**
 * When finished gangs are looked at: every `collectEveryMs` (the age bound)
 * and soon after a gang finishes (the count bound), once the burst of events
 * that finished it is over. A failed collection is logged and tried again.
 */
export class CollectTimer {
  private timer: NodeJS.Timeout | undefined;
  private pending = false;
  private closed = false;

  constructor(private readonly collect: () => Promise<number>, private readonly log: Logger) {}

  start(retention: GangRetention): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => this.run(), collectEveryMs(retention));
    this.timer.unref();
  }

  soon(): void {
    if (this.pending || this.closed) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.run();
    });
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }

  private run(): void {
    if (this.closed) return;
    this.collect().catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'finished gangs not collected; tried again later'));
  }
}
