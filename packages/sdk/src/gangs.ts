/**
 * Gangs from the SDK: the ranks of one TP×PP replica, launched on a
 * placement group and watched as one.
 *
 *   const gang = await cluster.gangs.launch({
 *     name: 'mlp', placementGroup: 'mlp-pg', tp: 4, pp: 2,
 *     template: { command: 'node', args: ['rank.js'], ports: [{ name: 'http' }],
 *                 readiness: { kind: 'http', port: 'http', path: '/health' } },
 *     startup: { deadlineMs: 30_000, maxRestarts: 3 },
 *   });
 *   await gang.ready({ timeout: 60_000 });   // every rank ready, or the first failure
 *   for await (const chunk of gang.logs({ rank: 0 })) process.stdout.write(chunk);
 *   await gang.stop();
 */
import { randomUUID } from 'node:crypto';
import type { HeadService } from './rpc.js';
import { ErrorCode, MusterError, fromGrpcError } from '@muster/common';
import { collect, pages, type PageOptions } from './pages.js';
import { checkEncodedSize, checkGangSpec } from './spec-schemas.js';
import { warmupToWire } from './warmup-spec.js';
import type { GangSpec, ProbeSpec } from './specs.js';
import { GangSpec as GangSpecCodec, GangState as G, type GangFailure, type GangServiceClient, type Probe, type ShardTemplate, type StartupPolicy } from '@muster/proto';
import type * as wire from '@muster/proto';


export type GangStateName = 'pending' | 'starting' | 'ready' | 'restarting' | 'failed' | 'stopping' | 'stopped' | 'unknown';

/** Which gangs `list()` / `pages()` return; the head filters. */
export interface GangFilter extends PageOptions {
  state?: Exclude<GangStateName, 'unknown'>;
  /** Only names starting with this. */
  namePrefix?: string;
}

/** "ready" → GANG_STATE_READY. */
function gangStateOfName(name: Exclude<GangStateName, 'unknown'>): G {
  const state = G[`GANG_STATE_${String(name).toUpperCase()}` as keyof typeof G] as G | undefined;
  if (state === undefined || state === G.GANG_STATE_UNSPECIFIED || state === G.UNRECOGNIZED) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `unknown gang state "${name}" (pending, starting, ready, restarting, failed, stopping, stopped)`, { details: { field: 'state' } });
  }
  return state;
}

export interface RankView {
  rank: number;
  nodeId: string;
  tpRank: number;
  ppRank: number;
  localRank: number;
  cudaVisibleDevices: string;
  ports: Record<string, number>;
  phase: string;
  pid: number;
  exitCode: number | undefined;
  reason: string;
  /** A gang with roles (a replica group's prefill/decode): the rank's role and role instance; '' and 0 otherwise. */
  role: string;
  roleIndex: number;
}

export interface FailureView {
  attempt: number;
  rank: number;
  nodeId: string;
  reason: string;
  exitCode: number | undefined;
  signal: string;
  /** The rank's last log lines. */
  logTail: string;
  time: Date;
}

export interface GangView {
  id: string;
  name: string;
  state: GangStateName;
  placementGroupId: string;
  attempt: number;
  restarts: number;
  ranks: RankView[];
  firstFailure: FailureView | undefined;
  lastFailure: FailureView | undefined;
  /** What it waits on, or why it is in its state. */
  message: string;
  masterAddr: string;
  masterPort: number;
  createdAt: Date;
}

const failure = (f: GangFailure | undefined): FailureView | undefined =>
  f && { attempt: f.attempt, rank: f.rank, nodeId: f.nodeId, reason: f.reason, exitCode: f.exitCode, signal: f.signal, logTail: f.logTail, time: new Date(f.timeMs) };

export function gangView(g: wire.Gang): GangView {
  return {
    id: g.id,
    name: g.spec?.name ?? '',
    state: (G[g.state]?.replace('GANG_STATE_', '').toLowerCase() ?? 'unknown') as GangStateName,
    placementGroupId: g.placementGroupId,
    attempt: g.attempt,
    restarts: g.restarts,
    ranks: g.ranks.map((r) => ({ rank: r.rank, nodeId: r.nodeId, tpRank: r.tpRank, ppRank: r.ppRank, localRank: r.localRank, cudaVisibleDevices: r.cudaVisibleDevices, ports: r.ports, phase: r.phase, pid: r.pid, exitCode: r.exitCode, reason: r.reason, role: r.role, roleIndex: r.roleIndex })),
    firstFailure: failure(g.firstFailure),
    lastFailure: failure(g.lastFailure),
    message: g.message,
    masterAddr: g.masterAddr,
    masterPort: g.masterPort,
    createdAt: new Date(g.createdAtMs),
  };
}

const int = (v: number | undefined) => v ?? 0;
const probe = (p: ProbeSpec | undefined): Probe | undefined =>
  p && { kind: p.kind, port: p.port === undefined ? '' : String(p.port), path: p.path ?? '', command: p.command ?? [], periodMs: int(p.periodMs), timeoutMs: int(p.timeoutMs), failureThreshold: int(p.failureThreshold) };

/** Shared with replica groups: a shard template and startup policy on the wire. */
export function templateToWire(t: GangSpec['template'] | undefined): ShardTemplate {
  t ??= {} as GangSpec['template'];
  return { command: t.command ?? '', args: t.args ?? [], env: t.env ?? {}, cwd: t.cwd ?? '', ports: (t.ports ?? []).map((p) => ({ name: p.name, port: int(p.port) })), readiness: probe(t.readiness), liveness: probe(t.liveness), warmup: warmupToWire(t.warmup) };
}

export function startupToWire(s: GangSpec['startup']): StartupPolicy | undefined {
  return s && { deadlineMs: int(s.deadlineMs), maxRestarts: s.maxRestarts === 0 ? -1 : int(s.maxRestarts), backoffInitialMs: int(s.backoffInitialMs), backoffMaxMs: int(s.backoffMaxMs), gracePeriodMs: int(s.gracePeriodMs) };
}

/** The wire has no room for unknown keys: a misspelt one is refused here, by path (spec-schemas.ts). */
function toWire(input: GangSpec): wire.GangSpec {
  const s = checkGangSpec(input);
  const w: wire.GangSpec = {
    name: s.name ?? '',
    placementGroup: s.placementGroup ?? '',
    tp: int(s.tp),
    pp: int(s.pp),
    template: templateToWire(s.template),
    startup: startupToWire(s.startup),
    logMaxBytes: int(s.logMaxBytes),
    replicaGroup: '',
    replicaId: '',
    roles: [],
  };
  checkEncodedSize('gang spec', GangSpecCodec.encode({ ...w, name: '', placementGroup: '' }).finish().length, 'gangSpecBytes');
  return w;
}


export class Gang {
  constructor(private view: GangView, private readonly api: Gangs) {}

  get id(): string { return this.view.id; }
  get name(): string { return this.view.name; }
  get state(): GangStateName { return this.view.state; }
  get ranks(): RankView[] { return this.view.ranks; }
  get message(): string { return this.view.message; }
  toJSON(): GangView { return this.view; }

  async refresh(): Promise<this> {
    this.view = (await this.api.get(this.id)).view;
    return this;
  }

  /**
   * Resolves when every rank is ready. Rejects with MUSTER_FAILED_PRECONDITION
   * carrying the first failure (reason, exit code, last log lines) when the
   * gang FAILED or was stopped, and with MUSTER_DEADLINE_EXCEEDED saying what
   * it waits on after `timeout` ms.
   */
  async ready(opts: { timeout?: number } = {}): Promise<this> {
    const timeout = opts.timeout ?? 120_000;
    const deadline = Date.now() + timeout;
    for (;;) {
      this.view = gangView(await this.api.waitRaw(this.id, Math.min(Math.max(0, deadline - Date.now()), 60_000)));
      if (this.view.state === 'ready') return this;
      if (this.view.state === 'failed' || this.view.state === 'stopped') {
        const f = this.view.firstFailure;
        throw new MusterError(ErrorCode.FAILED_PRECONDITION, `gang ${this.name} is ${this.view.state}: ${this.view.message}${f?.logTail ? `\nlast log lines of rank ${f.rank}:\n${f.logTail}` : ''}`, { details: { firstFailure: f } });
      }
      if (Date.now() >= deadline) throw new MusterError(ErrorCode.DEADLINE_EXCEEDED, `gang ${this.name} not ready after ${timeout} ms (${this.view.state}): ${this.view.message}`);
    }
  }

  async stop(): Promise<void> {
    this.view = (await this.api.stop(this.id)).view;
  }

  /** A rank's log (stdout+stderr): the last `tailBytes`, then new output with `follow`. */
  logs(opts: { rank?: number; follow?: boolean; tailBytes?: number; signal?: AbortSignal } = {}): AsyncIterable<Uint8Array> {
    return this.api.logs(this.id, opts);
  }
}

export class Gangs {
  constructor(private readonly head: HeadService<GangServiceClient>) {}

  async launch(spec: GangSpec): Promise<Gang> {
    const sent = toWire(spec);
    // One id for every attempt of this launch: a retry after a failover returns the gang it made.
    const requestId = randomUUID();
    return this.handle(await this.head.call<wire.Gang>((c, md, o, cb) => c.launchGang({ spec: sent, requestId }, md, o, cb)));
  }

  async get(idOrName: string): Promise<Gang> {
    return this.handle(await this.head.call<wire.Gang>((c, md, o, cb) => c.getGang({ id: idOrName }, md, o, cb)));
  }

  /** Every gang, or those the filter keeps, oldest first (fetched page by page). */
  async list(filter: GangFilter = {}): Promise<Gang[]> {
    return collect(this.fetchPage(filter));
  }

  /** Like list(), one page (head request) at a time. */
  pages(filter: GangFilter = {}): AsyncGenerator<Gang[]> {
    return pages(this.fetchPage(filter));
  }

  private fetchPage(filter: GangFilter) {
    const req = { state: filter.state ? gangStateOfName(filter.state) : G.GANG_STATE_UNSPECIFIED, namePrefix: filter.namePrefix ?? '', pageSize: filter.pageSize ?? 0 };
    return async (pageToken: string) => {
      const res = await this.head.call<wire.ListGangsResponse>((c, md, o, cb) => c.listGangs({ ...req, pageToken }, md, o, cb));
      return { items: res.gangs.map((g) => this.handle(g)), nextPageToken: res.nextPageToken };
    };
  }

  async stop(idOrName: string): Promise<Gang> {
    return this.handle(await this.head.call<wire.Gang>((c, md, o, cb) => c.stopGang({ id: idOrName }, md, o, cb)));
  }

  /**
   * @internal Waits up to `timeoutMs` on the head. A wait cut by a failover
   * is sent again to the new leader for the time that is left.
   */
  waitRaw(id: string, timeoutMs: number): Promise<wire.Gang> {
    const until = Date.now() + timeoutMs;
    const left = () => Math.max(0, until - Date.now());
    return this.head.call<wire.Gang>((c, md, o, cb) => c.waitGang({ id, timeoutMs: left() }, md, o, cb), timeoutMs + 10_000);
  }

  /** A rank's log, from the current head; not resumed if the stream breaks (it would repeat the tail). */
  async *logs(idOrName: string, opts: { rank?: number; follow?: boolean; tailBytes?: number; signal?: AbortSignal }): AsyncGenerator<Uint8Array> {
    const call = this.head.current().streamLogs({ gang: idOrName, rank: opts.rank ?? 0, follow: opts.follow ?? false, tailBytes: opts.tailBytes ?? 0 }, this.head.metadata);
    const abort = () => call.cancel();
    opts.signal?.addEventListener('abort', abort, { once: true });
    try {
      for await (const chunk of call as AsyncIterable<{ data: Uint8Array }>) yield chunk.data;
    } catch (e) {
      if (!opts.signal?.aborted) throw fromGrpcError(e);
    } finally {
      opts.signal?.removeEventListener('abort', abort);
      call.cancel();
    }
  }

  private handle(g: wire.Gang): Gang {
    return new Gang(gangView(g), this);
  }
}
