/**
 * What the head hears on the data plane: replicas' load reports
 * (`<prefix>.load.<group>`, every second, from `serve()` and HTTP bridges)
 * and routers' demand reports (`<prefix>.demand.<group>`, calls waiting for
 * a replica). The replica group controller uses them to finish drains and
 * to autoscale. Without NATS there is nothing to hear. Subjects and report
 * shapes are @muster/contracts' (subjects.ts); a report its decoder refuses
 * (no id, a negative or absurd count) is ignored.
 */
import { decode, type Logger, type NatsConnection, type Subscription } from '@muster/common';
import { allDemandSubjects, allLoadSubjects, groupOfSubject, toDemandReport, toLoadReport } from '@muster/contracts';
import type { DemandSample, LoadSample } from '../autoscaler/index.js';

export class LoadReports {
  private readonly load = new Map<string, Omit<LoadSample, 'replicaId'>>();
  /** group → router id → its last report */
  private readonly demand = new Map<string, Map<string, Omit<DemandSample, 'routerId'>>>();
  readonly listening: boolean;
  private readonly subs: Subscription[] = [];

  constructor(nats: { conn: NatsConnection; prefix: string } | undefined, private readonly log: Logger) {
    this.listening = nats !== undefined;
    if (!nats) return;
    this.follow(nats.conn, allLoadSubjects(nats.prefix), (_subject, data) => {
      const r = toLoadReport(data);
      if (r) this.load.set(r.replicaId, { inFlight: r.inFlight, queued: r.queued, timeMs: r.timeMs });
    });
    this.follow(nats.conn, allDemandSubjects(nats.prefix), (subject, data) => {
      const r = toDemandReport(data);
      if (!r) return;
      const group = groupOfSubject(subject);
      if (!this.demand.has(group)) this.demand.set(group, new Map());
      this.demand.get(group)!.set(r.routerId, { waiting: r.waiting, timeMs: r.timeMs });
    });
  }

  /** The last report of a replica. */
  of(replicaId: string): Omit<LoadSample, 'replicaId'> | undefined {
    return this.load.get(replicaId);
  }

  /** Reports of these replicas, and of the group's routers, no older than `lookbackMs`. */
  window(group: string, replicaIds: Iterable<string>, lookbackMs: number, nowMs: number): { samples: LoadSample[]; demand: DemandSample[] } {
    const samples: LoadSample[] = [];
    for (const id of replicaIds) {
      const r = this.load.get(id);
      if (r && nowMs - r.timeMs <= lookbackMs) samples.push({ replicaId: id, ...r });
    }
    const demand = [...(this.demand.get(group) ?? [])].filter(([, d]) => nowMs - d.timeMs <= lookbackMs).map(([routerId, d]) => ({ routerId, ...d }));
    return { samples, demand };
  }

  forget(replicaId: string): void {
    this.load.delete(replicaId);
  }

  close(): void {
    for (const sub of this.subs) sub.unsubscribe();
  }

  private follow(conn: NatsConnection, subject: string, onReport: (subject: string, r: unknown) => void): void {
    const sub = conn.subscribe(subject);
    this.subs.push(sub);
    (async () => {
      for await (const m of sub) {
        try {
          onReport(m.subject, decode<unknown>(m.data));
        } catch {
          // not a report: ignore
        }
      }
    })().catch((e: unknown) => {
      // The subscription broke (NATS closed it): reports on this subject stop until the next term subscribes again.
      this.log.warn({ subject, err: (e as Error).message }, 'load report subscription ended with an error; reports stop until the next leader term');
    });
  }
}
