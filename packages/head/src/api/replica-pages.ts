/**
 * Replica pages: how a replica group's answer stays under 1 MiB however many
 * replicas it has (issue 15: no gRPC message over PAGE_BYTES).
 *
 * A group's record lists every replica (about 130–200 encoded bytes each, so
 * ~1.3–2 MB at 10,000). The API never sends them all at once:
 * - GetReplicaGroup sends one page, chosen by the request's replica_* fields
 *   (page size, token, states, revision), oldest replica first;
 * - Apply/Scale/DeleteReplicaGroup send the first page of the unfiltered
 *   walk, whose token GetReplicaGroup continues;
 * - ListReplicaGroups sends no replicas (a page holds up to 1,000 groups).
 * Every answer carries `replica_page` with the token of the next page and
 * counts (`total`, `by_state`) over all the group's replicas, so a summary (`muster rg list`, the gateway's ready count)
 * needs no page.
 *
 * An old client that sets no page size gets the default page (1,000
 * replicas): bounded, and whole for any group of up to 1,000 replicas. It
 * never learns that more exist unless it reads replica_page.next_page_token.
 *
 * Pages are keyset pages (pages.ts): the sort key is the replica's creation
 * time then id, so replicas added or removed during a walk never shift the
 * others. The list bound into a token is "replicas of <group>", and the
 * filters are bound too, so a token of another group, of another list or
 * with other filters is refused naming page_token. A page also stops before
 * its replicas pass what PAGE_BYTES leaves beside the rest of the group
 * (spec, stable spec, autoscaler state).
 */
import { PAGE_BYTES } from '@muster/contracts';
import { ErrorCode, MusterError } from '@muster/common';
import { Replica, ReplicaGroup, type GetReplicaGroupRequest, type ReplicaPage } from '@muster/proto';
import { paginate, timeKey } from './pages.js';

/** Replicas per page when the request does not say (also what an old client gets). */
export const DEFAULT_REPLICA_PAGE_SIZE = 1000;
/** Room kept for the token, the counts and the message framing beside the group's other fields. */
const SLACK_BYTES = 16 * 1024;
/** At most this many states in a filter (there are five; repeats are harmless). */
const MAX_STATE_FILTERS = 16;

/** The request fields that choose a page of replicas. */
export type ReplicaPageRequest = Pick<GetReplicaGroupRequest, 'replicaPageSize' | 'replicaPageToken' | 'replicaStates' | 'replicaRevision'>;

/** The first page of the unfiltered walk (what Apply/Scale/Delete answer with). */
export const FIRST_PAGE: ReplicaPageRequest = { replicaPageSize: 0, replicaPageToken: '', replicaStates: [], replicaRevision: '' };

/** The page info of an answer: `nextPageToken`, and counts of every replica of `g`, by state and in all. */
function pageInfo(g: ReplicaGroup, nextPageToken: string): ReplicaPage {
  const byState: Record<string, number> = {};
  for (const r of g.replicas) byState[r.state] = (byState[r.state] ?? 0) + 1;
  return { nextPageToken, total: g.replicas.length, byState };
}

/** `g` as ListReplicaGroups sends it: counts, no replicas. */
export function withoutReplicas(g: ReplicaGroup): ReplicaGroup {
  return { ...g, replicas: [], replicaPage: pageInfo(g, '') };
}

function checkFilters(req: ReplicaPageRequest): { states: string[]; revision: string } {
  if (req.replicaStates.length > MAX_STATE_FILTERS) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `replica_states: ${req.replicaStates.length} states; at most ${MAX_STATE_FILTERS}`, { details: { field: 'replica_states' } });
  }
  // Sorted and unique, so the same filter in another order continues the same walk.
  return { states: [...new Set(req.replicaStates)].sort(), revision: req.replicaRevision };
}

/**
 * `g` with one page of its replicas (by `req`) and the counts of all of
 * them. `key` signs page tokens (the head's page key).
 */
export function replicaPage(key: Buffer, g: ReplicaGroup, req: ReplicaPageRequest): ReplicaGroup {
  const filters = checkFilters(req);
  const rest = ReplicaGroup.encode({ ...g, replicas: [] }).finish().length;
  const page = paginate(key, {
    list: `replicas of ${g.name}`,
    filters,
    req: { pageSize: req.replicaPageSize || DEFAULT_REPLICA_PAGE_SIZE, pageToken: req.replicaPageToken },
    items: g.replicas.filter((r) => (!filters.states.length || filters.states.includes(r.state)) && (!filters.revision || r.revision === filters.revision)),
    sortKey: (r) => timeKey(r.createdAtMs, r.id),
    // The field's tag and length prefix beside the replica itself.
    sizeOf: (r) => Replica.encode(r).finish().length + 4,
    maxBytes: Math.max(PAGE_BYTES - rest - SLACK_BYTES, 0),
  });
  return { ...g, replicas: page.items, replicaPage: pageInfo(g, page.nextPageToken) };
}
