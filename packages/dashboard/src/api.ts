/**
 * How the pages talk to the head: JSON GETs under /api (the session cookie
 * travels with them), sign-in (a one-time ticket from the URL fragment, or
 * the cluster token typed into the form, traded for an HttpOnly cookie), and
 * the event stream — one EventSource for the whole app, resumed by the
 * browser from the last event id, fanned out to whoever listens.
 *
 * The shapes below are the parts of the head's JSON the pages read (the
 * proto messages' toJSON: camelCase, enums by name, absent when default).
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly leader?: string,
  ) {
    super(message);
  }
}

export async function get<T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T> {
  const qs = new URLSearchParams(Object.entries(query).filter((e): e is [string, string | number] => e[1] !== undefined && e[1] !== '').map(([k, v]) => [k, String(v)]));
  const res = await fetch(`/api${path}${qs.size ? `?${qs}` : ''}`, { credentials: 'same-origin' });
  return read<T>(res);
}

async function read<T>(res: Response): Promise<T> {
  const body = (await res.json().catch(() => ({}))) as { error?: string; leader?: string };
  if (!res.ok) throw new ApiError(res.status, body.error ?? res.statusText, body.leader);
  return body as T;
}

export interface Who {
  role: string;
  name: string;
}

/** Signs in with a ticket or the cluster token; the head sets the session cookie. */
export async function signIn(with_: { ticket: string } | { token: string }): Promise<Who> {
  const res = await fetch('/api/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', ...('token' in with_ ? { Authorization: `Bearer ${with_.token}` } : {}) },
    body: JSON.stringify('ticket' in with_ ? { ticket: with_.ticket } : {}),
  });
  return read<Who>(res);
}

export const whoami = () => get<Who>('/whoami');
/** Signs out: the event stream closes first (the next sign-in, perhaps someone else's, opens its own). */
export const signOut = () => {
  closeEvents();
  return fetch('/api/logout', { method: 'POST', credentials: 'same-origin' });
};

export interface ClusterEvent {
  id: string;
  timeMs?: number;
  kind: string;
  nodeId?: string;
  message?: string;
  attributes?: Record<string, string>;
}

/** `live`: the event happened after the page opened (false while the retained ones are replayed). */
type Listener = (e: ClusterEvent, live: boolean) => void;
const listeners = new Set<Listener>();
/** The latest events seen (bounded), newest last. */
export const recentEvents: ClusterEvent[] = [];
const RECENT = 500;
let source: EventSource | undefined;
let replayed = false;
const replayListeners = new Set<() => void>();

/** Events of the last hour are replayed when the page opens (a day of them need not be). */
const REPLAY_MS = 3_600_000;

/** Subscribes to cluster events (replayed ones first, then live); returns the unsubscribe. */
export function onEvent(fn: Listener): () => void {
  listeners.add(fn);
  openEvents();
  return () => listeners.delete(fn);
}

/** Called once the retained events were replayed (at once if they were). */
export function onReplayed(fn: () => void): () => void {
  if (replayed) fn();
  else replayListeners.add(fn);
  return () => replayListeners.delete(fn);
}

function openEvents(): void {
  if (source) return;
  source = new EventSource(`/api/events?sinceMs=${REPLAY_MS}`, { withCredentials: true });
  source.addEventListener('event', (m) => {
    const e = JSON.parse((m as MessageEvent<string>).data) as ClusterEvent;
    if (replayed) receivedAt.set(e, Date.now());
    recentEvents.push(e);
    if (recentEvents.length > RECENT) recentEvents.splice(0, recentEvents.length - RECENT);
    for (const l of listeners) l(e, replayed);
  });
  source.addEventListener('replay-end', () => {
    replayed = true;
    for (const l of replayListeners) l();
    replayListeners.clear();
  });
}

function closeEvents(): void {
  source?.close();
  source = undefined;
  replayed = false;
  recentEvents.length = 0;
}

/** When each live event arrived (replayed ones have none). */
const receivedAt = new WeakMap<ClusterEvent, number>();

/** Whether a live event of one of `kinds` arrived in the last `ms` milliseconds. */
export function liveWithin(kinds: readonly string[], ms: number): boolean {
  const since = Date.now() - ms;
  for (let i = recentEvents.length - 1; i >= 0; i--) {
    const e = recentEvents[i]!;
    const at = receivedAt.get(e);
    if (at === undefined || at < since) return false;
    if (kinds.some((k) => e.kind.startsWith(k))) return true;
  }
  return false;
}

/** A stream of one rank's log (its last 64 KiB, then as it is written). */
export function streamLog(gang: string, rank: number, onText: (t: string) => void, onError: (m: string) => void): () => void {
  const s = new EventSource(`/api/gangs/${encodeURIComponent(gang)}/logs?rank=${rank}`, { withCredentials: true });
  s.addEventListener('log', (m) => onText(JSON.parse((m as MessageEvent<string>).data) as string));
  s.addEventListener('error', (m) => {
    const data = (m as MessageEvent<string>).data;
    if (data) onError((JSON.parse(data) as { error: string }).error);
    s.close();
  });
  return () => s.close();
}

export interface Gpu {
  index?: number;
  uuid?: string;
  name?: string;
  memoryMib?: number;
  migEnabled?: boolean;
  mig?: Array<{ profile?: string; uuid?: string; index?: number }>;
}

export interface NodeJson {
  nodeId: string;
  state: string;
  labels?: Record<string, string>;
  address?: string;
  draining?: boolean;
  stateReason?: string;
  lastHeartbeatMs?: number;
  gpusUsed?: number;
  inventory?: {
    hostname?: string;
    cpuCores?: number;
    memoryBytes?: number;
    gpus?: Gpu[];
    source?: string;
    nvlinkDomain?: string;
    topology?: { links?: string[]; nvlinkIslands?: Array<{ gpuIndices?: number[] }> };
  };
}

export interface Holder {
  gpuIndex: number;
  migUuid?: string;
  pg: string;
  pgName: string;
  bundleIndex: number;
  gang?: string;
  gangName?: string;
  rank?: number;
}

export interface PgJson {
  id: string;
  state: string;
  spec?: { name?: string; strategy?: string; bundles?: Array<{ gpus?: number; cpuMillis?: number; migProfile?: string }> };
  placements?: Array<{ bundleIndex?: number; nodeId?: string; gpuIndices?: number[]; migUuids?: string[] }>;
  reason?: { code?: string; message?: string; rejections?: Array<{ code?: string; detail?: string; count?: number }> };
  createdAtMs?: number;
}

export interface RankJson {
  rank?: number;
  nodeId?: string;
  cudaVisibleDevices?: string;
  phase?: string;
  pid?: number;
  exitCode?: number;
  reason?: string;
}

export interface FailureJson {
  attempt?: number;
  rank?: number;
  nodeId?: string;
  reason?: string;
  exitCode?: number;
  timeMs?: number;
}

export interface GangJson {
  id: string;
  state: string;
  spec?: { name?: string };
  placementGroupId?: string;
  attempt?: number;
  restarts?: number;
  ranks?: RankJson[];
  firstFailure?: FailureJson;
  lastFailure?: FailureJson;
  message?: string;
}

export interface ReplicaJson {
  id: string;
  revision?: string;
  state?: string;
  gangId?: string;
  placementGroupId?: string;
  message?: string;
  load?: { timeMs?: number; inFlight?: number; queued?: number };
}

export interface ReplicaGroupJson {
  name: string;
  desired?: number;
  revision?: string;
  stableRevision?: string;
  message?: string;
  replicas?: ReplicaJson[];
  spec?: { tp?: number; pp?: number; rollout?: { strategy?: string; canaryWeight?: number }; replicas?: { min?: number; max?: number } };
  autoscaler?: { lastReason?: string; lastChangeMs?: number };
  autoscalerView?: { metric?: string; value?: number; perReplica?: number; target?: number; desired?: number; reason?: string };
}
