/**
 * ReplicaGroupService: apply, inspect, scale and delete replica groups;
 * stream their membership.
 *
 * GetReplicaGroup adds what the head knows live beside the stored record
 * (`muster rg get` shows it): each replica's last load report
 * (`Replica.load`) and, for an autoscaled group, the autoscaler's view now
 * (`ReplicaGroup.autoscaler_view`: the value of the metric that drives it —
 * of several, the one asking for the most replicas — the desired count it
 * would choose, and why). These are never stored, and ListReplicaGroups
 * leaves them out (a page holds many groups).
 *
 * No answer carries all of a group's replicas: one page of them, and their
 * counts (replica-pages.ts says which page each call sends, and why).
 * WatchMembership sends a snapshot that would pass 256 KiB in parts
 * (@muster/common membership-parts.ts).
 */
import { ReplicaGroup, type ListReplicaGroupsRequest, type Membership, type ReplicaGroupServiceServer } from '@muster/proto';
import { mayCall } from '@muster/contracts';
import { MAX_MEMBERSHIP_PARTS, membershipParts } from '@muster/common';
import type { ReplicaGroupController } from '../controllers/replica-groups.js';
import { BoundedStream } from './bounded-stream.js';
import { paginate } from './pages.js';
import { FIRST_PAGE, replicaPage, withoutReplicas } from './replica-pages.js';
import { serverStream, unary, type RpcContext } from './rpc.js';

export function replicaService(ctx: RpcContext, rgs: ReplicaGroupController): ReplicaGroupServiceServer {
  // Every watcher of a group gets the same snapshot object from its feed: split once per version.
  const split = new WeakMap<Membership, Membership[]>();
  const partsOf = (m: Membership) => split.get(m) ?? split.set(m, membershipParts(m)).get(m)!;
  return {
    // Every answer with a group carries one page of its replicas and their counts (replica-pages.ts).
    applyReplicaGroup: unary(ctx, 'ApplyReplicaGroup', async (req, _md, who) => replicaPage(ctx.pageKey, await rgs.apply(req.spec, who), FIRST_PAGE)),
    getReplicaGroup: unary(ctx, 'GetReplicaGroup', async (req) => replicaPage(ctx.pageKey, withLive(rgs.get(req.name), rgs.live(req.name)), req)),
    listReplicaGroups: unary(ctx, 'ListReplicaGroups', async (req: ListReplicaGroupsRequest, _md, who) => {
      const { namePrefix } = req;
      const page = paginate(ctx.pageKey, {
        list: 'replica-groups',
        filters: { namePrefix },
        req,
        // A caller sees the groups it may call (what GetReplicaGroup shows it one by one), no others.
        items: rgs.list().filter((g) => g.name.startsWith(namePrefix) && (who.role !== 'caller' || mayCall(who, g.name))).map(withoutReplicas),
        sortKey: (g) => g.name,
        sizeOf: (g) => ReplicaGroup.encode(g).finish().length,
      });
      return { groups: page.items, nextPageToken: page.nextPageToken };
    }),
    scaleReplicaGroup: unary(ctx, 'ScaleReplicaGroup', async (req, _md, who) => replicaPage(ctx.pageKey, await rgs.scale(req.name, req.replicas, who), FIRST_PAGE)),
    deleteReplicaGroup: unary(ctx, 'DeleteReplicaGroup', async (req, _md, who) => replicaPage(ctx.pageKey, await rgs.delete(req.name, who), FIRST_PAGE)),
    watchMembership: serverStream(ctx, 'WatchMembership', async (call) => {
      const abort = new AbortController();
      call.once('cancelled', () => abort.abort());
      call.once('close', () => abort.abort());
      // The feed keeps only the newest membership: waiting for a slow reader
      // here holds one snapshot (its parts) for it, and it gets the newest when
      // it catches up. All parts of a version are handed on at once, so no
      // other version comes between them; the bound is one snapshot's parts.
      const out = new BoundedStream(call, { what: `the membership of "${call.request.group}"`, maxQueued: MAX_MEMBERSHIP_PARTS });
      for await (const m of rgs.watch(call.request.group, abort.signal)) {
        for (const part of partsOf(m)) out.send(part);
        if (out.isCut) await out.cut;
        await out.ready(abort.signal);
        if (abort.signal.aborted) return;
      }
    }),
  };
}

/** `g` with its replicas' loads and the autoscaler's view (see the top of this file). */
function withLive(g: ReplicaGroup, live: ReturnType<ReplicaGroupController['live']>): ReplicaGroup {
  const replicas = g.replicas.map((r) => {
    const l = live.loads.get(r.id);
    if (!l) return r;
    const e = l.engine;
    return { ...r, load: { timeMs: l.timeMs, inFlight: l.inFlight, queued: l.queued, engineWaiting: e?.waiting, engineRunning: e?.running, engineKvCache: e?.kvCache, resources: l.resources && { ...l.resources, gpus: l.resources.gpus ?? 0 }, custom: l.custom ?? {} } };
  });
  const d = live.decision;
  const autoscalerView = d && live.policy
    ? { metric: d.metric, value: d.inputs.metric, perReplica: d.inputs.perReplica, target: d.target, desired: d.desired, reason: d.reason, samples: d.inputs.samples }
    : undefined;
  return { ...g, replicas, autoscalerView };
}
