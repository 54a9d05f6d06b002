/**
 * Bounds of the batched placement-group calls (CreatePlacementGroups,
 * RemovePlacementGroups), which the SDK and the head must agree on: the SDK
 * packs the creates and removes its application issues together into
 * batches within them, and the head refuses a batch over MAX_PG_BATCH items
 * whole. Both stay far under MAX_MESSAGE_BYTES (grpc-options.ts).
 */

/** The most items one batched placement-group call carries. */
export const MAX_PG_BATCH = 1000;
/**
 * The most bytes of items a client packs into one batched request, and of
 * group records the head puts into one reply (a record past it is answered
 * by id only, and read with GetPlacementGroup).
 */
export const PG_BATCH_BYTES = 1024 * 1024;
