/**
 * PlacementGroupService: create, inspect, wait for and remove placement
 * groups, one at a time or in batches (CreatePlacementGroups,
 * RemovePlacementGroups: the SDK coalesces the creates and removes an
 * application issues together into them, so 100 concurrent creates cost one
 * call and one commit instead of 100 calls).
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import {
  PlacementGroup,
  type ListPlacementGroupsRequest,
  type PlacementGroupResult,
  type PlacementGroupServiceServer,
  type PlacementGroupsReply,
  type WaitPlacementGroupsReply,
  type WaitPlacementGroupsRequest,
} from '@muster/proto';
import { MAX_PG_BATCH, PG_BATCH_BYTES } from '@muster/contracts';
import { ErrorCode, MusterError, toMusterError } from '@muster/common';
import type { PlacementGroupController } from '../controllers/placement-groups.js';
import { BoundedStream } from './bounded-stream.js';
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
    createPlacementGroups: unary(ctx, 'CreatePlacementGroups', async (req) => batchReply(await pgs.createMany(checkBatch(req.items)))),
    removePlacementGroups: unary(ctx, 'RemovePlacementGroups', async (req) => batchReply(await pgs.removeMany(checkBatch(req.items).map((it) => it.id)))),
    waitPlacementGroup: unary(ctx, 'WaitPlacementGroup', (req) => pgs.wait(req.id, req.timeoutMs)),
    waitPlacementGroups: bidiStream(ctx, 'WaitPlacementGroups', (call) => serveWaits(call, pgs)),
  };
}

/** A batch over MAX_PG_BATCH items is refused whole, naming `items`. */
export function checkBatch<T>(items: T[]): T[] {
  if (items.length > MAX_PG_BATCH) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `items: ${items.length} in one batch; the limit is ${MAX_PG_BATCH} (MAX_PG_BATCH): send them in several`, { details: { field: 'items' } });
  }
  return items;
}

/**
 * One result per item, in order. Records are put in while the reply's
 * records stay within PG_BATCH_BYTES; a group past that is answered by id
 * only (the client reads it with GetPlacementGroup), so a batch of large
 * groups never makes a reply over the message limit.
 */
export function batchReply(done: Array<PlacementGroup | MusterError>, budget = PG_BATCH_BYTES): PlacementGroupsReply {
  let bytes = 0;
  const results = done.map((r): PlacementGroupResult => {
    if (r instanceof MusterError) return { group: undefined, id: '', errorCode: r.code, errorMessage: r.message };
    bytes += PlacementGroup.encode(r).finish().length;
    return { group: bytes <= budget ? r : undefined, id: r.id, errorCode: '', errorMessage: '' };
  });
  return { results };
}

/** Waits one stream may hold open (asked, not yet answered to the transport). */
export const MAX_OPEN_WAITS = 10_000;
/** Answers one reply carries at most (to a client that reads `more`). */
export const MAX_ANSWERS_PER_REPLY = 256;

/**
 * Answers each wait of the stream when its group settles or its time is up,
 * in whatever order that happens. Waits still open when the stream ends are
 * dropped: their timers end them on their own (at most 60 s).
 *
 * A client that asks with `batched_answers` gets the answers that settle in
 * one turn of the event loop in one reply (`more`; at most
 * MAX_ANSWERS_PER_REPLY answers and about PG_BATCH_BYTES of records): 100
 * groups acknowledged together cost one message instead of 100.
 *
 * Bounded: a wait beyond MAX_OPEN_WAITS (open plus answered but not yet
 * taken by the transport, a reply counted as full) is refused with
 * MUSTER_RESOURCE_EXHAUSTED, so the answers held for a client that does not
 * read them stay bounded too.
 */
export function serveWaits(
  call: ServerDuplexStream<WaitPlacementGroupsRequest, WaitPlacementGroupsReply>,
  pgs: Pick<PlacementGroupController, 'wait'>,
  maxOpen = MAX_OPEN_WAITS,
): Promise<void> {
  let open = true;
  let waiting = 0;
  /** Answers a reply may carry on this stream: 1 until the client asks for batched answers. */
  let perReply = 1;
  const out = new BoundedStream<WaitPlacementGroupsReply>(call, { what: 'the placement group waits', maxQueued: maxOpen });
  /** Batched answers of this turn, sent together at its end. */
  const gathered: WaitPlacementGroupsReply[] = [];
  let gatheredBytes = 0;
  const sendGathered = () => {
    const [first, ...more] = gathered.splice(0);
    gatheredBytes = 0;
    if (first && open) out.send({ ...first, more });
  };
  const answer = (reply: WaitPlacementGroupsReply, batched: boolean) => {
    if (!open) return;
    if (!batched) {
      out.send(reply);
      return;
    }
    const bytes = reply.group ? PlacementGroup.encode(reply.group).finish().length : 0;
    if (gathered.length > 0 && (gathered.length >= MAX_ANSWERS_PER_REPLY || gatheredBytes + bytes > PG_BATCH_BYTES)) sendGathered();
    if (gathered.length === 0) setImmediate(sendGathered);
    gathered.push(reply);
    gatheredBytes += bytes;
  };
  return new Promise<void>((resolve, reject) => {
    const finish = () => {
      open = false;
      resolve();
    };
    // A client that keeps asking (and being refused) without reading is cut.
    out.cut.catch((e: unknown) => {
      open = false;
      reject(e);
    });
    call.on('data', (req: WaitPlacementGroupsRequest) => {
      if (req.batchedAnswers) perReply = MAX_ANSWERS_PER_REPLY;
      const refuse = (e: unknown) => {
        const err = toMusterError(e);
        answer({ tag: req.tag, group: undefined, errorCode: err.code, errorMessage: err.message, more: [] }, req.batchedAnswers);
      };
      if (waiting + gathered.length + out.queued * perReply >= maxOpen) {
        refuse(new MusterError(ErrorCode.RESOURCE_EXHAUSTED, `more than ${maxOpen} waits open on one stream; read the answers or wait on another stream`));
        return;
      }
      try {
        waiting++;
        void pgs.wait(req.id, req.timeoutMs).then(
          (group) => answer({ tag: req.tag, group, errorCode: '', errorMessage: '', more: [] }, req.batchedAnswers),
          refuse,
        ).finally(() => waiting--);
      } catch (e) {
        waiting--;
        refuse(e); // an unknown group is refused before any waiting
      }
    });
    call.on('end', () => {
      sendGathered();
      if (open) call.end();
      finish();
    });
    call.on('cancelled', finish);
    call.on('error', finish);
  });
}
