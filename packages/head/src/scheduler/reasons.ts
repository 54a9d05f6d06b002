/**
 * Stable reason codes. They are part of the API: a pending group's persisted
 * reason carries them, dashboards count them, tests match on them. Add codes;
 * never rename one.
 */
export const ReasonCode = {
  // Node-level rejections (one per node, for its first failing filter).
  NODE_DEAD: 'node-dead',
  NODE_DRAINING: 'node-draining',
  NODE_UNSUPPORTED: 'node-unsupported',
  NODE_HELD: 'node-held',
  TAINT: 'taint-not-tolerated',
  SELECTOR: 'selector-mismatch',
  TOPOLOGY_LABEL: 'topology-label-missing',
  SPREAD_NODE_USED: 'node-already-used',
  CPU: 'insufficient-cpu',
  MEMORY: 'insufficient-memory',
  CUSTOM: 'insufficient-custom',
  GPU: 'insufficient-gpu',
  GPU_MEMORY: 'insufficient-gpu-memory',
  MIG: 'insufficient-mig',
  GPU_ISLAND: 'gpu-island-too-small',
  // Group-level verdicts (the `code` of an Unschedulable).
  INVALID_SPEC: 'invalid-spec',
  NO_NODES: 'no-nodes',
  TOO_FEW_NODES: 'too-few-nodes',
  NO_DOMAIN: 'no-domain-fits',
  BUNDLE_UNPLACEABLE: 'bundle-unplaceable',
} as const;

export type ReasonCode = (typeof ReasonCode)[keyof typeof ReasonCode];

/** How each node rejection reads in a sentence; `detail` is appended when present. */
export const reasonPhrase: Record<string, string> = {
  [ReasonCode.NODE_DEAD]: 'node dead',
  [ReasonCode.NODE_DRAINING]: 'node draining',
  [ReasonCode.NODE_UNSUPPORTED]: 'unsupported node',
  [ReasonCode.NODE_HELD]: 'held for starving group',
  [ReasonCode.TAINT]: 'untolerated taint',
  [ReasonCode.SELECTOR]: 'label mismatch',
  [ReasonCode.TOPOLOGY_LABEL]: 'missing topology label',
  [ReasonCode.SPREAD_NODE_USED]: 'already holds a bundle of this group (STRICT_SPREAD)',
  [ReasonCode.CPU]: 'insufficient CPU',
  [ReasonCode.MEMORY]: 'insufficient memory',
  [ReasonCode.CUSTOM]: 'insufficient',
  [ReasonCode.GPU]: 'insufficient GPU',
  [ReasonCode.GPU_MEMORY]: 'GPUs too small',
  [ReasonCode.MIG]: 'no free MIG slice',
  [ReasonCode.GPU_ISLAND]: 'NVLink island too small',
};

/** A filter's "no": a stable code and a short stable detail (a taint key, a label, a resource name). */
export interface Rejection {
  readonly ok: false;
  readonly reason: ReasonCode;
  readonly detail: string;
}

export type FilterResult = { readonly ok: true } | Rejection;

/** Shared success value: filters run ~10^6 times per second, so don't allocate on the happy path. */
export const OK: FilterResult = { ok: true };

const interned = new Map<string, Map<string, Rejection>>();

/**
 * The one `Rejection` object for (reason, detail). Interning keeps the filters
 * allocation-free and lets the counter count by object identity.
 */
export function reject(reason: ReasonCode, detail = ''): Rejection {
  let byDetail = interned.get(reason);
  if (byDetail === undefined) {
    byDetail = new Map();
    interned.set(reason, byDetail);
  }
  let r = byDetail.get(detail);
  if (r === undefined) {
    if (byDetail.size > 10_000) byDetail.clear(); // details are few in practice; bound them anyway
    r = Object.freeze({ ok: false as const, reason, detail });
    byDetail.set(detail, r);
  }
  return r;
}

/**
 * Counts rejections during one attempt. Each node is added once per bundle
 * attempt, so counts read as "N nodes rejected because ...".
 */
export class RejectionCounter {
  private readonly counts = new Map<Rejection, number>();
  total = 0;

  add(r: Rejection, n = 1): void {
    this.counts.set(r, (this.counts.get(r) ?? 0) + n);
    this.total += n;
  }

  /** Largest first; ties by code then detail so output is stable. */
  list(): { code: string; detail: string; count: number }[] {
    const merged = new Map<string, { code: string; detail: string; count: number }>();
    for (const [r, count] of this.counts) {
      const key = `${r.reason}\u0000${r.detail}`;
      const m = merged.get(key);
      if (m === undefined) merged.set(key, { code: r.reason, detail: r.detail, count });
      else m.count += count;
    }
    return [...merged.values()].sort((a, b) => b.count - a.count || a.code.localeCompare(b.code) || a.detail.localeCompare(b.detail));
  }
}
