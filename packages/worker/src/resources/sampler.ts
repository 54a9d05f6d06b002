/**
 * The resource sampler: once per report period, what each replica's ranks on
 * this node use — CPU cores and resident memory of the ranks and every
 * process below them (proc.ts), and on GPU nodes the utilisation of the
 * replica's GPUs and the GPU memory its processes hold (gpu.ts).
 *
 *   tick ─▶ read every /proc/<pid>/stat (none while no rank runs here)
 *        ─▶ parent → children, once ─▶ per replica: the ranks' trees
 *          ─▶ CPU = Δ(utime + stime) of each process seen in both ticks / Δt
 *          ─▶ memory = Σ VmRSS ─▶ GPU (below) ─▶ ResourceUsage per replica
 *
 * CPU needs two reads: a replica's first tick reports no `cpu` (the head's
 * autoscaler holds on a metric not reported rather than read a zero), and a
 * process is known by pid and start time, so a recycled pid never yields a
 * negative or borrowed delta. A process that exits between two ticks takes
 * its last fraction of a second with it.
 *
 * GPU values, by how the worker found its GPUs (its inventory's source):
 *  - `nvidia-smi`: the GPUs' utilisation and memory from one long-running
 *    nvidia-smi (gpu-reader.ts), started at the first tick where some rank
 *    here holds a GPU and stopped by close(); the processes' GPU memory from
 *    the compute-app query, run at most once every APPS_QUERY_INTERVAL_MS and
 *    at once for a new rank holding GPUs (compute-apps.ts), while the reader
 *    has a fresh sample. A failing, hanging or garbled nvidia-smi is logged
 *    once a streak and the reports carry no GPU values until it answers again;
 *  - `simulated` (a profile or recorded files: no real GPU to ask): stand-ins
 *    that move with the load, so GPU policies can be exercised on CPU
 *    machines — utilisation = the replica's CPU cores ÷ its GPUs, at most 1;
 *    GPU memory = its resident memory;
 *  - `none`: no GPU values.
 */
import type { ResourceUsage } from '@muster/contracts';
import { ComputeApps } from './compute-apps.js';
import { queryApps, replicaGpuUse, type AppUse, type GpuUse } from './gpu.js';
import { GpuUseReader } from './gpu-reader.js';
import { childrenOf, CLOCK_TICKS, descendants, readProcTable, residentBytes } from './proc.js';

export type GpuSource = 'nvidia-smi' | 'simulated' | 'none';

/** One rank this node runs, as the sampler needs it. */
export interface RankRef {
  group: string;
  replicaId: string;
  pid: number;
  /** CUDA_VISIBLE_DEVICES' entries. */
  devices: string[];
}

export interface ReplicaUsage {
  group: string;
  replicaId: string;
  usage: ResourceUsage;
}

export interface SamplerOptions {
  gpu: GpuSource;
  /** Where /proc is (tests: a directory laid out like it). */
  procRoot?: string;
  /** Monotonic clock, ms. */
  now?: () => number;
  /** With `nvidia-smi`: the GPUs it lists here (the inventory's), the rows of each of the reader's blocks. */
  gpuCount?: number;
  /** The GPU reader (tests: a stand-in, or one over a fake nvidia-smi); default: gpu-reader.ts on `nvidia-smi`. */
  gpuReader?: () => Pick<GpuUseReader, 'start' | 'latest' | 'stop'>;
  /** The compute-app query (tests: recorded output, or a fake nvidia-smi); run at the cadence of compute-apps.ts. */
  queryApps?: () => Promise<AppUse[]>;
  log: { warn(o: object, msg?: string): void; info(o: object, msg?: string): void };
}

export class ResourceSampler {
  /** `${pid}:${startTime}` → CPU ticks at the last tick. */
  private last = new Map<string, number>();
  private lastAt: number | undefined;
  private apps: ComputeApps | undefined;
  private reader: Pick<GpuUseReader, 'start' | 'latest' | 'stop'> | undefined;
  private closed = false;

  constructor(private readonly opts: SamplerOptions) {
    if (opts.gpu === 'nvidia-smi' && !opts.gpuReader && !(Number.isInteger(opts.gpuCount) && opts.gpuCount! > 0)) {
      throw new Error('a sampler reading nvidia-smi needs the GPU count');
    }
  }

  /** Stops the GPU reader, if one was started (its child is gone when this resolves); no GPU values after. */
  async close(): Promise<void> {
    this.closed = true;
    await this.reader?.stop();
  }

  /** One sample of every replica with ranks in `ranks`. */
  async sample(ranks: readonly RankRef[]): Promise<ReplicaUsage[]> {
    if (ranks.length === 0) {
      // No rank runs here yet (or any more): nothing to read /proc for, and no CPU times to keep.
      this.last.clear();
      this.lastAt = undefined;
      return [];
    }
    const now = this.opts.now ?? (() => performance.now());
    const table = await readProcTable(this.opts.procRoot);
    const children = childrenOf(table);
    const at = now();
    const seconds = this.lastAt === undefined ? 0 : (at - this.lastAt) / 1000;
    const byReplica = new Map<string, { group: string; replicaId: string; roots: number[]; devices: Set<string> }>();
    for (const r of ranks) {
      const k = `${r.group}\0${r.replicaId}`;
      const e = byReplica.get(k) ?? { group: r.group, replicaId: r.replicaId, roots: [], devices: new Set<string>() };
      e.roots.push(r.pid);
      for (const d of r.devices) e.devices.add(d);
      byReplica.set(k, e);
    }
    // The ranks holding GPUs, by pid and start time: one the last app query was not asked for triggers the next.
    const gpuRanks = new Set(ranks.filter((r) => r.devices.length > 0).map((r) => `${r.pid}:${table.get(r.pid)?.startTime ?? '?'}`));
    const gpu = await this.gpuUse(gpuRanks);
    const next = new Map<string, number>();
    const out: ReplicaUsage[] = [];
    for (const e of byReplica.values()) {
      const pids = descendants(e.roots, table, children);
      let ticks = 0;
      let measured = false;
      for (const pid of pids) {
        const p = table.get(pid)!;
        const id = `${pid}:${p.startTime}`;
        next.set(id, p.cpuTicks);
        const before = this.last.get(id);
        if (before === undefined || p.cpuTicks < before) continue;
        ticks += p.cpuTicks - before;
        measured = true;
      }
      const usage: ResourceUsage = {};
      if (measured && seconds > 0) usage.cpu = ticks / CLOCK_TICKS / seconds;
      if (pids.size > 0) usage.memoryBytes = await residentBytes(pids, this.opts.procRoot);
      Object.assign(usage, this.gpuOf([...e.devices], pids, usage, gpu));
      out.push({ group: e.group, replicaId: e.replicaId, usage });
    }
    this.last = next; // only processes alive now: bounded by the node's process count
    this.lastAt = at;
    return out;
  }

  /** The GPU part of a replica's usage (see the top of this file). */
  private gpuOf(devices: string[], pids: ReadonlySet<number>, usage: ResourceUsage, gpu: { gpus: GpuUse[]; apps: AppUse[] } | undefined): ResourceUsage {
    if (devices.length === 0) return {};
    if (this.opts.gpu === 'simulated') {
      return {
        gpus: devices.length,
        ...(usage.cpu === undefined ? {} : { gpuUtilization: Math.min(1, usage.cpu / devices.length) }),
        ...(usage.memoryBytes === undefined ? {} : { gpuMemoryBytes: usage.memoryBytes }),
      };
    }
    if (!gpu) return {};
    const g = replicaGpuUse(devices, pids, gpu.gpus, gpu.apps);
    return {
      ...(g.utilization === undefined ? {} : { gpuUtilization: g.utilization, gpus: g.gpus }),
      ...(g.memoryBytes === undefined ? {} : { gpuMemoryBytes: g.memoryBytes }),
    };
  }

  /** nvidia-smi's answer this tick, when real GPUs are held here (by `gpuRanks`); undefined otherwise, or while the reader has no fresh sample, or while the app query fails (compute-apps.ts). */
  private async gpuUse(gpuRanks: ReadonlySet<string>): Promise<{ gpus: GpuUse[]; apps: AppUse[] } | undefined> {
    if (gpuRanks.size === 0 || this.opts.gpu !== 'nvidia-smi' || this.closed) return undefined;
    this.reader ??= this.opts.gpuReader?.() ?? new GpuUseReader({ gpus: this.opts.gpuCount!, log: this.opts.log });
    this.reader.start();
    // No fresh block (just started, exited, hung or garbled: the reader logs why): no GPU values, and no
    // app query either, which would only stall on the same driver.
    const gpus = this.reader.latest();
    if (!gpus) return undefined;
    this.apps ??= new ComputeApps({ query: this.opts.queryApps ?? (() => queryApps()), now: this.opts.now ?? (() => performance.now()), log: this.opts.log });
    const apps = await this.apps.get(gpuRanks);
    return apps && { gpus, apps };
  }
}
