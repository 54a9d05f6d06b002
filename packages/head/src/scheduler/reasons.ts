/**
 * Stable reason codes. They are part of the API: a pending group's persisted
 * reason carries them, dashboards count them, tests match on them. Add codes;
 * never rename one.
 */
export const ReasonCode = {
  // Node-level rejections (one per node, for its first failing filter).
  NODE_DEAD: 'node-dead',
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

/** A filter verdict. `detail` is short and stable: a taint key, a label, a resource name. */
export type FilterResult = { ok: true } | { ok: false; reason: ReasonCode; detail: string };

/** Shared success value: filters run ~10^6 times per second, so don't allocate on the happy path. */
export const OK: FilterResult = { ok: true };

export function reject(reason: ReasonCode, detail = ''): FilterResult {
  return { ok: false, reason, detail };
}

/**
 * Counts rejections by (code, detail) during one attempt. Each node is added
 * once per bundle attempt, so counts read as "N nodes rejected because ...".
 */
export class RejectionCounter {
  private readonly byCode = new Map<string, Map<string, number>>();
  total = 0;

  add(reason: string, detail: string, n = 1): void {
    let m = this.byCode.get(reason);
    if (m === undefined) {
      m = new Map();
      this.byCode.set(reason, m);
    }
    m.set(detail, (m.get(detail) ?? 0) + n);
    this.total += n;
  }

  addAll(other: RejectionCounter): void {
    for (const [code, m] of other.byCode) for (const [detail, n] of m) this.add(code, detail, n);
  }

  /** Largest first; ties by code then detail so output is stable. */
  list(): { code: string; detail: string; count: number }[] {
    const out: { code: string; detail: string; count: number }[] = [];
    for (const [code, m] of this.byCode) for (const [detail, count] of m) out.push({ code, detail, count });
    return out.sort((a, b) => b.count - a.count || a.code.localeCompare(b.code) || a.detail.localeCompare(b.detail));
  }
}
