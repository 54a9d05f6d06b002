/** PlacementGroupService: create, inspect, wait for and remove placement groups. */
import type { PlacementGroupServiceServer } from '@muster/proto';
import type { PlacementGroupController } from '../controllers/placement-groups.js';
import { unary, type RpcContext } from './rpc.js';

export function placementService(ctx: RpcContext, pgs: PlacementGroupController): PlacementGroupServiceServer {
  return {
    createPlacementGroup: unary(ctx, 'CreatePlacementGroup', (req) => pgs.create(req.spec, req.requestId)),
    getPlacementGroup: unary(ctx, 'GetPlacementGroup', async (req) => pgs.get(req.id)),
    listPlacementGroups: unary(ctx, 'ListPlacementGroups', async (req) => ({ groups: pgs.list(req.state) })),
    removePlacementGroup: unary(ctx, 'RemovePlacementGroup', (req) => pgs.remove(req.id)),
    waitPlacementGroup: unary(ctx, 'WaitPlacementGroup', (req) => pgs.wait(req.id, req.timeoutMs)),
  };
}
