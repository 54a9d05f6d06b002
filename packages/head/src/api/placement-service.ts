/** PlacementGroupService: create, inspect, wait for and remove placement groups. */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { PlacementGroup, type ListPlacementGroupsRequest, type PlacementGroupServiceServer, type WaitPlacementGroupsReply, type WaitPlacementGroupsRequest } from '@muster/proto';
import { toMusterError } from '@muster/common';
import type { PlacementGroupController } from '../controllers/placement-groups.js';
import { paginate, timeKey } from './pages.js';
import { bidiStream, unary, type RpcContext } from './rpc.js';

export function placementService(ctx: RpcContext, pgs: PlacementGroupController): PlacementGroupServiceServer {
  return {
    createPlacementGroup: unary(ctx, 'CreatePlacementGroup', (req) => pgs.create(req.spec, req.requestId)),
    getPlacementGroup: unary(ctx, 'GetPlacementGroup', async (req) => pgs.get(req.id)),
    listPlacementGroups: unary(ctx, 'ListPlacementGroups', async (req: ListPlacementGroupsRequest) => {
      const { state, namePrefix } = req;
      const all = pgs.list(state).filter((pg) => pg.spec?.name.startsWith(namePrefix) !== false);
      const page = paginate(ctx.pageKey, {
        list: 'placement-groups',
        filters: { state, namePrefix },
        req,
        items: all,
        sortKey: (pg) => timeKey(pg.createdAtMs, pg.id),
        sizeOf: (pg) => PlacementGroup.encode(pg).finish().length,
      });
      return { groups: page.items, nextPageToken: page.nextPageToken };
    }),
    removePlacementGroup: unary(ctx, 'RemovePlacementGroup', (req) => pgs.remove(req.id)),
    waitPlacementGroup: unary(ctx, 'WaitPlacementGroup', (req) => pgs.wait(req.id, req.timeoutMs)),
    waitPlacementGroups: bidiStream(ctx, 'WaitPlacementGroups', (call) => serveWaits(call, pgs)),
  };
}

/**
 * Answers each wait of the stream when its group settles or its time is up,
 * in whatever order that happens. Waits still open when the stream ends are
 * dropped: their timers end them on their own (at most 60 s).
 */
function serveWaits(call: ServerDuplexStream<WaitPlacementGroupsRequest, WaitPlacementGroupsReply>, pgs: PlacementGroupController): Promise<void> {
  let open = true;
  const answer = (reply: WaitPlacementGroupsReply) => {
    if (open) call.write(reply);
  };
  return new Promise<void>((resolve) => {
    const finish = () => {
      open = false;
      resolve();
    };
    call.on('data', (req: WaitPlacementGroupsRequest) => {
      const refuse = (e: unknown) => {
        const err = toMusterError(e);
        answer({ tag: req.tag, group: undefined, errorCode: err.code, errorMessage: err.message });
      };
      try {
        pgs.wait(req.id, req.timeoutMs).then((group) => answer({ tag: req.tag, group, errorCode: '', errorMessage: '' }), refuse);
      } catch (e) {
        refuse(e); // an unknown group is refused before any waiting
      }
    });
    call.on('end', () => {
      if (open) call.end();
      finish();
    });
    call.on('cancelled', finish);
    call.on('error', finish);
  });
}
