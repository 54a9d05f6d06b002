/**
 * The scheduler's working copy of the cluster: per node, what is still free,
 * in a form cheap to test (GPU bitmasks, counters per MIG profile).
 *
 * Built once from a `ClusterSnapshot`; `reserve`/`release` keep it current.
 * The pipeline reserves tentatively while it places one gang and releases
 * everything before it returns, so `placeGroup` leaves the state as it found
 * it; a caller that accepts a plan calls `commit`. Nothing here does I/O.
 *
 * Every change of a node's headroom goes through `reserve` / `release` (or
 * `replaceNode` / `addNode`), which file the node again in the index of
 * nodes by free capacity (node-index.ts) that the pipeline's passes read.
 * A controller keeping one state across cycles (controllers/pg-view.ts)
 * replaces a node whose record changed and adds a new one, instead of
 * building the state again from every node.
 */
import { MAX_GPUS_PER_NODE, andNot, bit, maskOf, popcount } from './bits.js';
import { NodeIndex } from './node-index.js';
import { topologyOf, type Topology } from './topology.js';
import { TopologyLabel, type BundlePlacement, type ClusterSnapshot, type SchedulerNode } from './types.js';

export interface MigSlot {
  uuid: string;
  profile: string;
  gpu: number;
  free: boolean;
}

export class NodeHeadroom {
  /** Position in `ClusterState.nodes`; ties between equal scores go to the lower one. */
  readonly idx: number;
  readonly node: SchedulerNode;
  readonly alive: boolean;
  /** Takes no new placement (false on the empty twin: a drain may be undone). */
  readonly draining: boolean;
  readonly topo: Topology;
  /** Empty when the scheduler can use the node; else why not (e.g. more than 32 GPUs). */
  readonly unsupported: string;
  /** GPUs that can be handed out whole (no MIG slices configured). */
  readonly wholeMask: number;
  readonly minGpuMemMiB: number;
  freeMask: number;
  freeCpu: number;
  freeMem: number;
  readonly freeCustom: Map<string, number>;
  readonly mig: MigSlot[];
  readonly migByUuid: Map<string, MigSlot>;
  /** Free MIG slices per profile. */
  readonly migFree: Map<string, number>;
  readonly zone: string | undefined;
  readonly rack: string | undefined;
  readonly nvlinkDomain: string | undefined;
  /** Placements on the node now (tentative ones included); 0: nothing is taken. */
  reservations = 0;
  /** Its shape class (ClusterState.shapeOf), -1 until asked. */
  shape = -1;

  constructor(idx: number, node: SchedulerNode, alive: boolean, draining = node.draining === true) {
    this.idx = idx;
    this.node = node;
    this.alive = alive;
    this.draining = draining;
    const n = node.gpus.length;
    this.unsupported = n > MAX_GPUS_PER_NODE ? `more than ${MAX_GPUS_PER_NODE} GPUs` : node.gpus.some((g, i) => g.index !== i) ? 'GPU indices not 0..N-1' : '';
    const usable = this.unsupported === '' ? node.gpus : [];
    this.topo = topologyOf(this.unsupported === '' ? node : { ...node, gpus: [], links: [], islands: [] });
    this.wholeMask = maskOf(usable.filter((g) => g.mig.length === 0).map((g) => g.index));
    this.minGpuMemMiB = usable.reduce((m, g) => Math.min(m, g.memoryMiB), Infinity);
    this.freeMask = this.wholeMask;
    this.freeCpu = node.capacity.cpuMillis;
    this.freeMem = node.capacity.memoryBytes;
    this.freeCustom = new Map(Object.entries(node.capacity.custom));
    this.mig = [];
    this.migByUuid = new Map();
    this.migFree = new Map();
    for (const g of usable) {
      for (const s of g.mig) {
        const slot: MigSlot = { uuid: s.uuid, profile: s.profile, gpu: g.index, free: true };
        this.mig.push(slot);
        this.migByUuid.set(s.uuid, slot);
        this.migFree.set(s.profile, (this.migFree.get(s.profile) ?? 0) + 1);
      }
    }
    this.zone = node.labels[TopologyLabel.ZONE];
    this.rack = node.labels[TopologyLabel.RACK];
    this.nvlinkDomain = node.nvlinkDomain ?? node.labels[TopologyLabel.NVLINK_DOMAIN];
  }

  /** Free whole GPUs with at least `minMiB` of memory each. */
  eligibleMask(minMiB: number): number {
    if (minMiB <= this.minGpuMemMiB) return this.freeMask;
    let m = 0;
    for (const g of this.node.gpus) if (g.memoryMiB >= minMiB) m |= bit(g.index);
    return (this.freeMask & m) >>> 0;
  }

  freeGpuCount(): number {
    return popcount(this.freeMask);
  }

  /** Nothing reserved: everything the node has is free. */
  get untouched(): boolean {
    return this.reservations === 0 && this.freeMask === this.wholeMask && this.freeCpu === this.node.capacity.cpuMillis && this.freeMem === this.node.capacity.memoryBytes;
  }
}

export class ClusterState {
  readonly nodes: NodeHeadroom[];
  /** The nodes by free capacity, kept by reserve/release (node-index.ts). */
  readonly index: NodeIndex;
  private readonly byId = new Map<string, NodeHeadroom>();
  private readonly groups = new Map<string, BundlePlacement[]>();
  /** Committed placements per node id, with their group: what a replaced node takes over. */
  private readonly onNode = new Map<string, Map<BundlePlacement, string>>();
  private twin: ClusterState | undefined;
  /** The empty twin's: every node counts as alive and none as draining. */
  private readonly forceAlive: boolean;
  /** Shape class ids by shape (see shapeOf); at most one per node. */
  private readonly shapes = new Map<string, number>();
  /**
   * Bundle passes (scan.ts pickNode) and the nodes they visited, by bundle
   * kind: whole GPUs, MIG slices, other (CPU, memory, custom only). Counters
   * only, read by bench/scheduler.ts to show what the index saves.
   */
  readonly passes = { gpu: { passes: 0, visits: 0 }, mig: { passes: 0, visits: 0 }, other: { passes: 0, visits: 0 } };
  /** Reservations in the snapshot that named an unknown node or an already-taken GPU. */
  loadConflicts = 0;
  /**
   * Memo for answers that depend only on the (immutable) node set and a
   * spec's shape: node-filter results, empty-cluster verdicts. Bounded.
   */
  readonly memo = new Map<string, unknown>();

  private constructor(nodes: SchedulerNode[], forceAlive: boolean) {
    this.forceAlive = forceAlive;
    this.nodes = nodes.map((n, i) => new NodeHeadroom(i, n, forceAlive || n.alive, !forceAlive && n.draining === true));
    this.index = new NodeIndex(this.nodes.length, (i) => this.shapeOf(this.nodes[i]!));
    for (const ns of this.nodes) {
      this.byId.set(ns.node.id, ns);
      this.index.track(ns);
    }
  }

  static from(snapshot: ClusterSnapshot): ClusterState {
    const s = new ClusterState(snapshot.nodes, false);
    const byGroup = new Map<string, BundlePlacement[]>();
    for (const r of snapshot.reservations) {
      const { groupId, ...placement } = r;
      const list = byGroup.get(groupId) ?? [];
      list.push(placement);
      byGroup.set(groupId, list);
    }
    for (const [groupId, placements] of byGroup) s.commit(groupId, placements);
    return s;
  }

  /**
   * The node's shape class: nodes of one class are the same to every filter
   * and scorer while untouched (everything but the id and device uuids). A
   * bundle's pass over 10,000 nodes then judges one untouched node per class
   * and counts the rest like it (pipeline.ts), instead of scoring each.
   */
  shapeOf(ns: NodeHeadroom): number {
    if (ns.shape >= 0) return ns.shape;
    const n = ns.node;
    const key = JSON.stringify([ns.alive, ns.draining, ns.unsupported, n.labels, n.nvlinkDomain, n.taints, n.capacity,
      n.gpus.map((g) => [g.index, g.memoryMiB, g.numaNode, g.mig.map((m) => m.profile)]), n.links, n.islands]);
    let shape = this.shapes.get(key);
    if (shape === undefined) this.shapes.set(key, (shape = this.shapes.size));
    ns.shape = shape;
    return shape;
  }

  remember(key: string, value: unknown): void {
    if (this.memo.size >= 4096) this.memo.clear();
    this.memo.set(key, value);
  }

  node(id: string): NodeHeadroom | undefined {
    return this.byId.get(id);
  }

  /** Same nodes, nothing reserved, every node alive and none draining: "would it fit on an empty cluster?" */
  emptyTwin(): ClusterState {
    this.twin ??= new ClusterState(this.nodes.map((n) => n.node), true);
    return this.twin;
  }

  /** Takes the placement's resources; returns false (and counts a conflict) if any was not free. */
  reserve(p: BundlePlacement): boolean {
    const ns = this.byId.get(p.nodeId);
    if (ns === undefined) {
      this.loadConflicts++;
      return false;
    }
    const want = (maskOf(p.gpuIndices.filter((i) => i >= 0 && i < MAX_GPUS_PER_NODE)) & ns.wholeMask) >>> 0;
    ns.reservations++;
    let clean = (ns.freeMask & want) === want;
    ns.freeMask = andNot(ns.freeMask, want);
    ns.freeCpu -= p.cpuMillis;
    ns.freeMem -= p.memoryBytes;
    for (const [k, v] of Object.entries(p.custom)) ns.freeCustom.set(k, (ns.freeCustom.get(k) ?? 0) - v);
    for (const uuid of p.migUuids) {
      const slot = ns.migByUuid.get(uuid);
      if (slot === undefined || !slot.free) {
        clean = false;
        continue;
      }
      slot.free = false;
      ns.migFree.set(slot.profile, (ns.migFree.get(slot.profile) ?? 0) - 1);
    }
    this.index.track(ns);
    if (!clean) this.loadConflicts++;
    return clean;
  }

  /** Gives back exactly what `reserve` took. */
  release(p: BundlePlacement): void {
    const ns = this.byId.get(p.nodeId);
    if (ns === undefined) return;
    ns.reservations--;
    ns.freeMask = (ns.freeMask | (maskOf(p.gpuIndices.filter((i) => i >= 0 && i < MAX_GPUS_PER_NODE)) & ns.wholeMask)) >>> 0;
    ns.freeCpu += p.cpuMillis;
    ns.freeMem += p.memoryBytes;
    for (const [k, v] of Object.entries(p.custom)) ns.freeCustom.set(k, (ns.freeCustom.get(k) ?? 0) + v);
    for (const uuid of p.migUuids) {
      const slot = ns.migByUuid.get(uuid);
      if (slot === undefined || slot.free) continue;
      slot.free = true;
      ns.migFree.set(slot.profile, (ns.migFree.get(slot.profile) ?? 0) + 1);
    }
    this.index.track(ns);
  }

  /** Accepts a plan (or loads a snapshot's reservations) for a group. */
  commit(groupId: string, placements: BundlePlacement[]): void {
    for (const p of placements) {
      this.reserve(p);
      let here = this.onNode.get(p.nodeId);
      if (here === undefined) this.onNode.set(p.nodeId, (here = new Map()));
      here.set(p, groupId);
    }
    this.groups.set(groupId, [...(this.groups.get(groupId) ?? []), ...placements]);
  }

  /** Frees everything a group holds; returns what it held. */
  releaseGroup(groupId: string): BundlePlacement[] {
    const held = this.groups.get(groupId) ?? [];
    for (const p of held) {
      this.release(p);
      const here = this.onNode.get(p.nodeId);
      here?.delete(p);
      if (here?.size === 0) this.onNode.delete(p.nodeId);
    }
    this.groups.delete(groupId);
    return held;
  }

  /**
   * The record of a known node changed (it re-registered, died, was drained):
   * its headroom is built again from `node`, at the same index, and takes
   * over the committed placements on it. Answers memoised for the old node
   * set are dropped. Returns false when no node has that id (add it instead).
   */
  replaceNode(node: SchedulerNode): boolean {
    const old = this.byId.get(node.id);
    if (old === undefined) return false;
    const ns = new NodeHeadroom(old.idx, node, this.forceAlive || node.alive, !this.forceAlive && node.draining === true);
    this.index.forget(old.idx);
    this.nodes[old.idx] = ns;
    this.byId.set(node.id, ns);
    this.index.track(ns);
    for (const p of this.onNode.get(node.id)?.keys() ?? []) this.reserve(p);
    this.twin?.replaceNode(node);
    this.forgetAnswers();
    return true;
  }

  /** A node the state does not know yet, after every other (ties go to it last). */
  addNode(node: SchedulerNode): void {
    if (this.replaceNode(node)) return;
    const ns = new NodeHeadroom(this.nodes.length, node, this.forceAlive || node.alive, !this.forceAlive && node.draining === true);
    this.nodes.push(ns);
    this.byId.set(node.id, ns);
    this.index.track(ns);
    // Placements committed before the node was known (a view caught up out of order) take their resources now.
    for (const p of this.onNode.get(node.id)?.keys() ?? []) this.reserve(p);
    this.twin?.addNode(node);
    this.forgetAnswers();
  }

  /** The node set changed: memoised answers go; so do shape classes no node has any more (bounded). */
  private forgetAnswers(): void {
    this.memo.clear();
    if (this.shapes.size < 2 * this.nodes.length + 64) return;
    this.shapes.clear();
    for (const ns of this.nodes) ns.shape = -1;
    this.index.refileClasses([...this.index.untouched]);
  }

  groupIds(): string[] {
    return [...this.groups.keys()];
  }

  placementsOf(groupId: string): readonly BundlePlacement[] {
    return this.groups.get(groupId) ?? [];
  }

  /** Whole-GPU and MIG-slice totals, for metrics and the benchmark. */
  usage(): { gpus: number; freeGpus: number; migSlices: number; freeMigSlices: number } {
    let gpus = 0;
    let freeGpus = 0;
    let migSlices = 0;
    let freeMigSlices = 0;
    for (const ns of this.nodes) {
      gpus += popcount(ns.wholeMask);
      freeGpus += popcount(ns.freeMask);
      migSlices += ns.mig.length;
      for (const s of ns.mig) if (s.free) freeMigSlices++;
    }
    return { gpus, freeGpus, migSlices, freeMigSlices };
  }
}
