/**
 * The pure gang-scheduler core: snapshot in, plan out, no I/O.
 * See docs/scheduler.md for the pipeline, plugins, reasons and queue policy.
 */
export * from './types.js';
export { ReasonCode, reasonPhrase, type FilterResult } from './reasons.js';
export { parsePlacementGroupSpec, PlacementGroupSpecSchema, BundleSchema, type PgSpecInput, type SpecParseResult } from './spec.js';
export { ClusterState, NodeHeadroom } from './state.js';
export { schedule, placeGroup, type PlaceOptions } from './pipeline.js';
export { planMoves, type MoveCandidate, type MovePlan } from './moves.js';
export { runCycle, compareQueued, chooseHold, DEFAULT_STARVATION_AFTER_MS, type QueuedGroup, type Hold, type CycleResult, type QueueOptions } from './queue.js';
export { rejectionSentence } from './explain.js';
export { freeTotals, roomFor, type FreeTotals } from './room.js';
export { selectGpus, selectMig } from './gpu-select.js';
export { buildTopology, deriveIslands, linkScore, topologyOf, type Topology } from './topology.js';
export { makeNode, PROFILES, DGX1_V100, HGX_H100, PCIE_4090, PCIE_SWITCHED, TWO_TRAY_16, A100_MIG, type NodeProfile, type NodeOptions } from './profiles.js';
