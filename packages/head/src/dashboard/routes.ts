/**
 * The dashboard's JSON API: one row per route, each answered by the head's
 * own gRPC handlers through the gate (invoke.ts) with the browser's
 * credential, and turned into JSON by the generated `toJSON` (enums by name,
 * int64 as numbers). Lists are the gRPC lists, page by page (`pageSize`,
 * `pageToken` → `nextPageToken`); the overview, the node list and the node
 * page walk the lists they need (at most `MAX_WALK` items each; one walk of
 * each list serves every asker for 2 s, after each asker's own
 * authorisation) and work out the rest in views.ts. Query strings are validated like every other input: strict,
 * unknown keys refused with a "did you mean".
 *
 *   GET /api/cluster                      GetClusterInfo (counts; no NATS details)
 *   GET /api/overview                     nodes and GPUs per zone/rack (one walk serves every asker for 2 s)
 *   GET /api/nodes?state&prefix&page…     ListNodes, with each node's GPUs in use
 *   GET /api/nodes/<id>                   GetNode + who holds each GPU
 *   GET /api/placement-groups?state&prefix&page…   ListPlacementGroups
 *   GET /api/placement-groups/<id>        GetPlacementGroup
 *   GET /api/gangs?state&prefix&page…     ListGangs
 *   GET /api/gangs/<id>                   GetGang
 *   GET /api/replica-groups?prefix&page…  ListReplicaGroups
 *   GET /api/replica-groups/<name>        GetReplicaGroup (with load and the autoscaler's view)
 *
 * The event stream and rank logs are server-sent events (server.ts).
 */
import { z } from 'zod';
import { ErrorCode, MusterError, didYouMeanKeys, formatIssues } from '@muster/common';
import {
  ClusterInfo,
  ClusterServiceService,
  Gang,
  GangServiceService,
  GangState,
  ListGangsResponse,
  ListNodesResponse,
  ListPlacementGroupsResponse,
  ListReplicaGroupsResponse,
  Node,
  NodeState,
  PlacementGroup,
  PlacementGroupServiceService,
  PlacementGroupState,
  ReplicaGroup,
  type GetReplicaGroupRequest,
  ReplicaGroupServiceService,
} from '@muster/proto';
import type { Credential, GateInvoker } from './invoke.js';
import { domains, gpuUse, gpusUsedByNode } from './views.js';

/** Items a walk over a list reads at most (the overview at 10,000 nodes reads them all). */
export const MAX_WALK = 20_000;

export type Query = Record<string, string>;

const page = {
  pageSize: z.coerce.number().int().min(1).max(1_000).optional(),
  pageToken: z.string().max(4_096).optional(),
  prefix: z.string().max(253).optional(),
};
const stateOf = <E extends Record<string, string | number>>(e: E, prefix: string) =>
  z
    .string()
    .transform((s, ctx) => {
      const v = e[`${prefix}${s.toUpperCase()}`];
      if (typeof v !== 'number') ctx.addIssue({ code: 'custom', message: `unknown state "${s.slice(0, 64)}"` });
      return v as number;
    })
    .optional();

const queries = {
  none: z.strictObject({}, didYouMeanKeys),
  nodes: z.strictObject({ ...page, state: stateOf(NodeState, 'NODE_STATE_') }, didYouMeanKeys),
  groups: z.strictObject({ ...page, state: stateOf(PlacementGroupState, 'PLACEMENT_GROUP_STATE_') }, didYouMeanKeys),
  gangs: z.strictObject({ ...page, state: stateOf(GangState, 'GANG_STATE_') }, didYouMeanKeys),
  rgs: z.strictObject(page, didYouMeanKeys),
};

function parse<S extends z.ZodType>(schema: S, q: Query): z.infer<S> {
  const r = schema.safeParse(q);
  if (!r.success) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `query: ${formatIssues(r.error.issues)}`);
  return r.data;
}

/** Answers GET `path` (below /api) with `query` as `cred`; throws a MusterError (NOT_FOUND for an unknown route). */
export async function answer(invoke: GateInvoker, path: string, query: Query, cred: Credential): Promise<unknown> {
  const [what, id, ...rest] = path.split('/').filter(Boolean).map(decodeSegment);
  if (rest.length > 0 || !what) throw notFound(path);
  const C = ClusterServiceService;
  const P = PlacementGroupServiceService;
  const G = GangServiceService;
  const R = ReplicaGroupServiceService;
  switch (id === undefined ? what : `${what}/`) {
    case 'cluster': {
      parse(queries.none, query);
      const info = await invoke.unary<ClusterInfo>(C, 'getClusterInfo', {}, cred);
      const json = ClusterInfo.toJSON({ ...info, nats: undefined }) as { summary?: unknown };
      return { headId: info.headId, version: info.version, store: info.store, summary: json.summary };
    }
    case 'overview': {
      parse(queries.none, query);
      await Promise.all([mayWalk(invoke, 'nodes', cred), mayWalk(invoke, 'groups', cred)]);
      return shared(invoke, 'overview', () =>
        Promise.all([shared(invoke, 'nodes', () => walkNodes(invoke, cred)), shared(invoke, 'groups', () => walkGroups(invoke, cred))]).then(([nodes, groups]) => ({ domains: domains(nodes, gpusUsedByNode(groups)) })),
      );
    }
    case 'nodes': {
      const q = parse(queries.nodes, query);
      const req = { state: q.state ?? 0, pageSize: q.pageSize ?? 100, pageToken: q.pageToken ?? '', nodeIdPrefix: q.prefix ?? '', labels: {} };
      await mayWalk(invoke, 'groups', cred);
      const [res, groups] = await Promise.all([invoke.unary<ListNodesResponse>(C, 'listNodes', req, cred), shared(invoke, 'groups', () => walkGroups(invoke, cred))]);
      const used = gpusUsedByNode(groups);
      const json = ListNodesResponse.toJSON(res) as { nodes?: Array<Record<string, unknown>> };
      return { ...json, nodes: (json.nodes ?? []).map((n, i) => ({ ...n, gpusUsed: used.get(res.nodes[i]!.nodeId) ?? 0 })) };
    }
    case 'nodes/': {
      parse(queries.none, query);
      await Promise.all([mayWalk(invoke, 'groups', cred), mayWalk(invoke, 'gangs', cred)]);
      const [node, groups, gangs] = await Promise.all([
        invoke.unary<Node>(C, 'getNode', { nodeId: id }, cred),
        shared(invoke, 'groups', () => walkGroups(invoke, cred)),
        shared(invoke, 'gangs', () => walkGangs(invoke, cred)),
      ]);
      return { node: Node.toJSON(node), holders: gpuUse(node, groups, gangs) };
    }
    case 'placement-groups': {
      const q = parse(queries.groups, query);
      const req = { state: q.state ?? 0, pageSize: q.pageSize ?? 100, pageToken: q.pageToken ?? '', namePrefix: q.prefix ?? '' };
      return ListPlacementGroupsResponse.toJSON(await invoke.unary(P, 'listPlacementGroups', req, cred));
    }
    case 'placement-groups/':
      parse(queries.none, query);
      return PlacementGroup.toJSON(await invoke.unary(P, 'getPlacementGroup', { id }, cred));
    case 'gangs': {
      const q = parse(queries.gangs, query);
      const req = { state: q.state ?? 0, pageSize: q.pageSize ?? 100, pageToken: q.pageToken ?? '', namePrefix: q.prefix ?? '' };
      return ListGangsResponse.toJSON(await invoke.unary(G, 'listGangs', req, cred));
    }
    case 'gangs/':
      parse(queries.none, query);
      return Gang.toJSON(await invoke.unary(G, 'getGang', { id }, cred));
    case 'replica-groups': {
      const q = parse(queries.rgs, query);
      const req = { pageSize: q.pageSize ?? 100, pageToken: q.pageToken ?? '', namePrefix: q.prefix ?? '' };
      return ListReplicaGroupsResponse.toJSON(await invoke.unary(R, 'listReplicaGroups', req, cred));
    }
    case 'replica-groups/':
      parse(queries.none, query);
      // The first page of its replicas (replica-pages.ts: at most 1,000, under 1 MiB) and their counts by state.
      return ReplicaGroup.toJSON(await invoke.unary(R, 'getReplicaGroup', { name: id ?? '', replicaPageSize: 0, replicaPageToken: '', replicaStates: [], replicaRevision: '' } satisfies GetReplicaGroupRequest, cred));
    default:
      throw notFound(path);
  }
}

/** How old a shared walk (and the overview made of two) may be when it is answered again (the pages' SHARED_WALK_MS, live.ts). */
export const OVERVIEW_MAX_AGE_MS = 2_000;
type Shared = { nodes: Node[]; groups: PlacementGroup[]; gangs: Gang[]; overview: { domains: ReturnType<typeof domains> } };
const walks = new WeakMap<GateInvoker, Map<keyof Shared, { at: number; value: Promise<unknown> }>>();

/**
 * The walk of `kind` at most OVERVIEW_MAX_AGE_MS old, made by `make` when
 * there is none: the overview, the node list and the node page (which
 * reloads on events, many browsers at once) cost one walk of each list per
 * 2 s between them. Only after the asker's own authorisation (mayWalk): the
 * walk is made with the credential of whoever asked first.
 */
function shared<K extends keyof Shared>(invoke: GateInvoker, kind: K, make: () => Promise<Shared[K]>): Promise<Shared[K]> {
  let byKind = walks.get(invoke);
  if (!byKind) walks.set(invoke, (byKind = new Map()));
  const cached = byKind.get(kind);
  if (cached && Date.now() - cached.at < OVERVIEW_MAX_AGE_MS) return cached.value as Promise<Shared[K]>;
  const value = make();
  byKind.set(kind, { at: Date.now(), value });
  value.catch(() => {
    if (byKind.get(kind)?.value === value) byKind.delete(kind); // a failed walk is not served again
  });
  return value;
}

/** Authorizes `cred` as the walk's own calls would be: one item of the list (the access table decides per method). */
async function mayWalk(invoke: GateInvoker, kind: 'nodes' | 'groups' | 'gangs', cred: Credential): Promise<void> {
  if (kind === 'nodes') await invoke.unary(ClusterServiceService, 'listNodes', { state: 0, pageSize: 1, pageToken: '', nodeIdPrefix: '', labels: {} }, cred);
  else if (kind === 'groups') await invoke.unary(PlacementGroupServiceService, 'listPlacementGroups', { state: 0, pageSize: 1, pageToken: '', namePrefix: '' }, cred);
  else await invoke.unary(GangServiceService, 'listGangs', { state: 0, pageSize: 1, pageToken: '', namePrefix: '' }, cred);
}

/** One path segment, %-decoded; a malformed escape ("%zz", a lone "%") is the asker's mistake (400), not a crash (500). */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `path: malformed %-escape in "${segment.slice(0, 128)}"`);
  }
}

const notFound = (path: string) => new MusterError(ErrorCode.NOT_FOUND, `no dashboard API route "${path.slice(0, 128)}"`);

/** Every item of a paged list, page after page (1,000 a page), at most MAX_WALK. */
async function walk<T>(fetchPage: (token: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const out: T[] = [];
  let token = '';
  do {
    const p = await fetchPage(token);
    out.push(...p.items);
    token = p.next;
  } while (token && out.length < MAX_WALK);
  return out;
}

const walkNodes = (invoke: GateInvoker, cred: Credential) =>
  walk(async (pageToken) => {
    const r = await invoke.unary<ListNodesResponse>(ClusterServiceService, 'listNodes', { state: 0, pageSize: 1_000, pageToken, nodeIdPrefix: '', labels: {} }, cred);
    return { items: r.nodes, next: r.nextPageToken };
  });

const walkGroups = (invoke: GateInvoker, cred: Credential) =>
  walk(async (pageToken) => {
    const r = await invoke.unary<ListPlacementGroupsResponse>(PlacementGroupServiceService, 'listPlacementGroups', { state: 0, pageSize: 1_000, pageToken, namePrefix: '' }, cred);
    return { items: r.groups, next: r.nextPageToken };
  });

const walkGangs = (invoke: GateInvoker, cred: Credential) =>
  walk(async (pageToken) => {
    const r = await invoke.unary<ListGangsResponse>(GangServiceService, 'listGangs', { state: 0, pageSize: 1_000, pageToken, namePrefix: '' }, cred);
    return { items: r.gangs, next: r.nextPageToken };
  });
