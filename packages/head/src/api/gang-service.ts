/** GangService: launch, inspect, wait for and stop gangs; relay rank logs. */
import { ErrorCode, MusterError, otelContext } from '@muster/common';
import { Gang, GangState, type GangServiceServer, type ListGangsRequest } from '@muster/proto';
import type { GangController } from '../controllers/gangs.js';
import type { LogRelay } from './log-relay.js';
import { BoundedStream } from './bounded-stream.js';
import { paginate, timeKey } from './pages.js';
import { serverStream, unary, type RpcContext } from './rpc.js';

export function gangService(ctx: RpcContext, gangs: GangController, logs: LogRelay): GangServiceServer {
  return {
    launchGang: unary(ctx, 'LaunchGang', async (req) => {
      // A replica group's gangs get that group's NATS user in their launch orders: only the
      // head's replica-group controller may make one, or any caller could mint itself a replica.
      if (req.spec?.replicaGroup) {
        throw new MusterError(ErrorCode.INVALID_ARGUMENT, `spec.replicaGroup: set by the head for the gangs of replica group "${req.spec.replicaGroup.slice(0, 128)}"; apply a replica group instead of launching its gang`, { details: { field: 'replicaGroup' } });
      }
      // The trace of this call (its server span, rpc-tracing.ts), handed over explicitly: the controller reads no ambient context.
      return gangs.launch(req.spec, req.requestId, otelContext.active());
    }),
    getGang: unary(ctx, 'GetGang', async (req) => gangs.get(req.id)),
    listGangs: unary(ctx, 'ListGangs', async (req: ListGangsRequest) => {
      const { state, namePrefix } = req;
      const all = gangs.list().filter((g) => (state === GangState.GANG_STATE_UNSPECIFIED || g.state === state) && g.spec?.name.startsWith(namePrefix) !== false);
      const page = paginate(ctx.pageKey, {
        list: 'gangs',
        filters: { state, namePrefix },
        req,
        items: all,
        sortKey: (g) => timeKey(g.createdAtMs, g.id),
        sizeOf: (g) => Gang.encode(g).finish().length,
      });
      return { gangs: page.items, nextPageToken: page.nextPageToken };
    }),
    stopGang: unary(ctx, 'StopGang', (req) => gangs.stop(req.id)),
    waitGang: unary(ctx, 'WaitGang', (req) => gangs.wait(req.id, req.timeoutMs)),
    streamLogs: serverStream(ctx, 'StreamLogs', async (call) => {
      const { gang, rank, follow, tailBytes } = call.request;
      const where = gangs.locate(gang, rank);
      const abort = new AbortController();
      call.once('cancelled', () => abort.abort());
      call.once('close', () => abort.abort());
      // Paced by the reader: the next chunk is taken from the relay once the transport took this one.
      const out = new BoundedStream(call, { what: `the log of rank ${rank}` });
      for await (const data of logs.open(where.nodeId, { gangId: where.gangId, attempt: where.attempt, rank, tailBytes: tailBytes || 65_536, follow }, abort.signal)) {
        out.send({ data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) });
        await out.ready(abort.signal);
      }
    }),
  };
}
