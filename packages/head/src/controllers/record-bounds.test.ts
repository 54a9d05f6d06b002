/**
 * No record over 1 MiB (issue 15): builds the largest placement group, gang
 * and node record the edge accepts — every count at its limit, every string
 * at its longest, multi-byte text where an agent's text is kept — encodes it
 * and checks it stays under RECORD_BUDGET; one past each bound is refused by
 * name. docs/limits.md#records has the derivation these numbers check.
 */
import { describe, expect, it } from 'vitest';
import { cutUtf8, NODE_LIMITS, SPEC_LIMITS } from '@muster/contracts';
import { Gang, GangState, Node, PlacementGroup, PlacementGroupState, type GangSpec, type PlacementGroupSpec, type RankStatus, type Register } from '@muster/proto';
import { parsePlacementGroupSpec } from '../scheduler/index.js';
import { validateRegister } from '../cluster/validate.js';
import { boundFailure } from './gang-gc.js';
import { MAX_PORTS_IN_USE } from './gang-plan.js';
import { gangSpecBytes, parseGangSpec, wireGangSpec } from './gang-spec.js';
import { pgRecordProblem, pgSpecBytes, specInput, wireSpec } from './pg-convert.js';

const L = SPEC_LIMITS;
/** What a record may take: 1 MiB less a margin of 128 KiB for fields a later version adds. */
const RECORD_BUDGET = 1024 * 1024 - 128 * 1024;
const x = (n: number, c = 'x') => c.repeat(n);
const many = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
/** A string of `n` characters, each 3 bytes in UTF-8 (what an agent's text may be). */
const wide = (n: number) => x(n, '€');
const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected a refusal');
};

/** 1,024 bundles sharing gpusPerGroup GPUs, custom resources with the longest names added until the spec is at pgSpecBytes. */
function largestPgSpec(): PlacementGroupSpec {
  const gpus = L.gpusPerGroup / L.bundles;
  const spec: PlacementGroupSpec = {
    name: x(L.nameLength), strategy: 'STRICT_SPREAD', topology: [], priority: -1_000_000,
    bundles: many(L.bundles, () => ({ cpuMillis: 2 ** 52, memoryBytes: 2 ** 52, gpus, gpuMemoryMib: 0, migProfile: '7g.80gb+me', custom: {} })),
    matchLabels: Object.fromEntries(many(L.labels, (i) => [`${i}${x(L.labelLength - 4)}`, x(L.labelLength)])),
    tolerations: many(L.tolerations, (i) => ({ key: `${i}${x(L.labelLength - 4)}`, operator: 'Equal', value: x(L.labelLength), effect: 'PreferNoSchedule' })),
  };
  for (let i = 0; ; i++) {
    const b = spec.bundles[i % L.bundles]!;
    const name = `${i}${x(L.labelLength - 8)}`;
    b.custom[name] = 1e300;
    const parsed = parsePlacementGroupSpec(specInput(spec));
    if (!parsed.ok) throw new Error(parsed.message);
    if (pgSpecBytes(parsed.spec) > L.pgSpecBytes) {
      delete b.custom[name];
      return spec;
    }
  }
}

describe('placement group records', () => {
  it('the largest accepted spec, placed on GPUs with the longest UUIDs, makes a record under the budget', () => {
    const w = largestPgSpec();
    const parsed = parsePlacementGroupSpec(specInput(w));
    if (!parsed.ok) throw new Error(parsed.message);
    expect(pgSpecBytes(parsed.spec)).toBeGreaterThan(L.pgSpecBytes - 1024); // filled to the cap
    const uuid = (i: number) => `${i}-${x(NODE_LIMITS.uuidLength - 8)}`.slice(0, NODE_LIMITS.uuidLength);
    const pg: PlacementGroup = {
      id: x(32), spec: wireSpec(parsed.spec), state: PlacementGroupState.PLACEMENT_GROUP_STATE_RESCHEDULING,
      // Every bundle on its own node, its MIG slices and their parent GPUs named.
      placements: w.bundles.map((b, i) => ({
        bundleIndex: i, nodeId: `${i}${x(62)}`.slice(0, 63), cpuMillis: b.cpuMillis, memoryBytes: b.memoryBytes, custom: b.custom,
        gpuIndices: many(b.gpus, (k) => k + 24), gpuUuids: many(b.gpus, (k) => uuid(i * 8 + k)), migUuids: many(b.gpus, (k) => uuid(i * 16 + k)),
      })),
      reason: { code: x(64), message: x(4096), bundleIndex: 1023, bundlesPlaced: 1023, nodesTotal: 10_000, rejections: many(64, () => ({ code: x(64), detail: x(256), count: 10_000 })), largestFreeIsland: undefined, mostFreeGpus: undefined },
      createdAtMs: 2 ** 52, stateChangedAtMs: 2 ** 52, reschedules: 2 ** 31, requestId: x(L.refLength),
    };
    const bytes = PlacementGroup.encode(pg).finish().length;
    expect(bytes).toBeLessThan(RECORD_BUDGET);
  });

  it('refuses a new spec past gpusPerGroup or pgSpecBytes by name; a stored one still loads', () => {
    const r = parsePlacementGroupSpec(specInput({ name: 'pg', strategy: '', topology: [], matchLabels: {}, tolerations: [], priority: 0, bundles: many(L.bundles, () => ({ cpuMillis: 0, memoryBytes: 0, gpus: 3, gpuMemoryMib: 0, migProfile: '', custom: {} })) }));
    if (!r.ok) throw new Error(r.message); // what load() reads: a record written under older bounds
    expect(pgRecordProblem(r.spec)).toBe(`bundles: gpus of all bundles together: 3072 GPUs; the limit is ${L.gpusPerGroup} (gpusPerGroup)`);
    const big = largestPgSpec();
    big.bundles[0]!.custom[`z${x(200)}`] = 1;
    const over = parsePlacementGroupSpec(specInput(big));
    if (!over.ok) throw new Error(over.message);
    expect(pgRecordProblem(over.spec)).toMatch(new RegExp(`^the spec takes \\d+ bytes encoded; the limit is ${L.pgSpecBytes} \\(pgSpecBytes\\)$`));
    const largest = parsePlacementGroupSpec(specInput(largestPgSpec()));
    expect(largest.ok && pgRecordProblem(largest.spec)).toBeUndefined();
  });
});

/** TP 8 × PP 128 ranks with ports to rankPorts and an environment filling the spec to gangSpecBytes. */
function largestGangSpec(): GangSpec {
  const ports = L.rankPorts / L.ranksPerReplica;
  const spec: GangSpec = {
    name: x(63), placementGroup: x(L.refLength), tp: 8, pp: L.ranksPerReplica / 8, logMaxBytes: 2 ** 40, replicaGroup: x(L.refLength), replicaId: x(L.refLength), roles: [],
    startup: { deadlineMs: 86_400_000, maxRestarts: 1000, backoffInitialMs: 3_600_000, backoffMaxMs: 3_600_000, gracePeriodMs: 3_600_000 },
    template: { command: x(L.commandLength), args: [], env: {}, cwd: x(L.cwdLength), ports: many(ports, (i) => ({ name: `p${i}${x(29)}`, port: 0 })), readiness: undefined, liveness: undefined, warmup: undefined },
  };
  // Grow one variable until the spec passes the cap, then step back.
  let lo = 0;
  let hi = L.envValueLength;
  const fits = (n: number) => {
    spec.template!.env = { BIG: x(n), ...Object.fromEntries(many(3, (i) => [`V${i}`, x(L.envValueLength)])) };
    try {
      parseGangSpec(spec);
      return true;
    } catch {
      return false;
    }
  };
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  fits(lo);
  return spec;
}

describe('gang records', () => {
  it('the largest accepted spec, with every rank failed with the longest text an agent sends, makes a record under the budget', () => {
    const w = largestGangSpec();
    const spec = parseGangSpec(w);
    expect(gangSpecBytes(spec)).toBeGreaterThan(L.gangSpecBytes - 1024);
    // The rank statuses as the planner keeps them from the agent's reports.
    const ranks: RankStatus[] = many(L.ranksPerReplica, (i) => ({
      rank: i, nodeId: `${i}${x(62)}`.slice(0, 63), tpRank: i % 8, ppRank: Math.floor(i / 8), localRank: i % 8,
      // gpusPerGroup MIG slices over the ranks, each named by the longest UUID.
      cudaVisibleDevices: many(L.gpusPerGroup / L.ranksPerReplica, () => x(NODE_LIMITS.uuidLength)).join(','),
      ports: Object.fromEntries(w.template!.ports.map((p) => [p.name, 65_535])),
      phase: 'pending', pid: 0, exitCode: undefined, signal: '', reason: '', role: x(31), roleIndex: 255, masterPort: 65_535,
    }));
    const gang: Gang = {
      id: x(32), spec: wireGangSpec(spec), state: GangState.GANG_STATE_RESTARTING, placementGroupId: x(32), attempt: 2 ** 31, restarts: 1000, ranks,
      firstFailure: boundFailure({ attempt: 1, rank: 1023, nodeId: x(63), reason: wide(4096), exitCode: -1, signal: wide(32), logTail: wide(8192), timeMs: 2 ** 52 }),
      lastFailure: boundFailure({ attempt: 1, rank: 1023, nodeId: x(63), reason: wide(4096), exitCode: -1, signal: wide(32), logTail: wide(8192), timeMs: 2 ** 52 }),
      message: wide(2048), createdAtMs: 2 ** 52, stateChangedAtMs: 2 ** 52, nextRestartAtMs: 2 ** 52, masterAddr: x(255), masterPort: 65_535, requestId: x(L.refLength),
      portsInUse: many(MAX_PORTS_IN_USE, () => ({ nodeId: x(63), port: 65_535 })),
    };
    // Every rank exited with the longest multi-byte phase, signal and reason an agent sends, as the planner keeps them.
    for (const r of ranks) Object.assign(r, { phase: cutUtf8(wide(32), 32), pid: 2 ** 31 - 1, exitCode: -1, signal: cutUtf8(wide(32), 32), reason: cutUtf8(wide(L.reasonLength), L.rankReasonBytes) });
    const bytes = Gang.encode(gang).finish().length;
    expect(bytes).toBeLessThan(RECORD_BUDGET);
  });

  it('refuses a spec past gangSpecBytes, and ranks × ports past rankPorts, by name', () => {
    const big = largestGangSpec();
    big.template!.env = { ...big.template!.env, MORE: x(2048) };
    expect(refusal(() => parseGangSpec(big))).toMatch(new RegExp(`the spec takes \\d+ bytes encoded; the limit is ${L.gangSpecBytes} \\(gangSpecBytes\\)`));
    expect(gangSpecBytes(parseGangSpec(big, { stored: true }))).toBeGreaterThan(L.gangSpecBytes); // a stored record still loads
    const ports = largestGangSpec();
    ports.template!.env = {};
    ports.template!.ports.push({ name: 'one_more', port: 0 });
    expect(refusal(() => parseGangSpec(ports))).toContain(`template.ports: ranks × ports = ${L.ranksPerReplica * 3} ports; the limit is ${L.rankPorts} (rankPorts)`);
  });

  it('takes the real-world shape: TP 8 × PP 16 with 8 ports per rank', () => {
    const w = largestGangSpec();
    w.tp = 8;
    w.pp = 16;
    w.template!.ports = many(8, (i) => ({ name: `p${i}`, port: 0 }));
    expect(parseGangSpec(w).pp).toBe(16);
  });
});

/** A node at every NODE_LIMITS bound, with the longest strings the registration schema takes. */
function largestRegister(): Register {
  const n = NODE_LIMITS.gpus;
  return {
    nodeId: x(63), incarnation: x(128), agentVersion: x(64), address: x(255),
    labels: Object.fromEntries(many(64, (i) => [`${i}${x(250)}/${x(63)}`.slice(-317), x(63)])),
    taints: many(32, (i) => ({ key: `k${i}${x(60)}`, value: x(63), effect: 'PreferNoSchedule' })),
    inventory: {
      hostname: x(253), cpuCores: 16_384, memoryBytes: 2 ** 50, nvlinkDomain: x(128), source: x(128),
      gpus: many(n, (i) => ({
        index: i, uuid: x(NODE_LIMITS.uuidLength), name: x(NODE_LIMITS.gpuNameLength), memoryMib: 4 * 1024 * 1024, numaNode: 1024, pciBusId: x(64),
        mig: many(NODE_LIMITS.migSlicesPerGpu, (k) => ({ profile: x(64), uuid: x(NODE_LIMITS.uuidLength), index: 2 ** 31 - 1 - k })), migEnabled: true,
      })),
      topology: { links: many(n * n, () => 'NV999'), nvlinkIslands: many(n, (i) => ({ gpuIndices: [i] })), nics: many(NODE_LIMITS.nics, () => ({ name: x(64), links: many(n, () => 'NV999') })) },
      customResources: Object.fromEntries(many(NODE_LIMITS.customResources, (i) => [`${i}${x(250)}/${x(63)}`.slice(-317), 1e300])),
    },
  };
}

describe('node records', () => {
  it('the largest registration accepted makes a record under the budget', () => {
    const reg = validateRegister(largestRegister());
    const node: Node = {
      nodeId: reg.nodeId, state: 1, labels: reg.labels, taints: reg.taints, inventory: reg.inventory, address: reg.address, incarnation: reg.incarnation, agentVersion: reg.agentVersion,
      registeredAtMs: 2 ** 52, lastHeartbeatMs: 2 ** 52, stateChangedAtMs: 2 ** 52, stateReason: x(1024), draining: true, drainReason: wide(L.reasonLength), drainSinceMs: 2 ** 52, drainedBy: 'operator',
    };
    expect(Node.encode(node).finish().length).toBeLessThan(RECORD_BUDGET);
  });

  it.each([
    ['inventory.gpus', (r: Register) => r.inventory!.gpus.push({ ...r.inventory!.gpus[0]!, index: 31 }), `more than ${NODE_LIMITS.gpus} GPUs on one node (gpus`],
    ['inventory.gpus[0].mig', (r: Register) => r.inventory!.gpus[0]!.mig.push(r.inventory!.gpus[0]!.mig[0]!), `more than ${NODE_LIMITS.migSlicesPerGpu} MIG slices on one GPU (migSlicesPerGpu`],
    ['inventory.gpus[0].uuid', (r: Register) => (r.inventory!.gpus[0]!.uuid = x(NODE_LIMITS.uuidLength + 1)), '(uuidLength)'],
    ['inventory.customResources', (r: Register) => (r.inventory!.customResources.extra = 1), `${NODE_LIMITS.customResources + 1} custom resources; the limit is ${NODE_LIMITS.customResources} (customResources)`],
  ])('refuses one past the bound on %s by name', (field, grow, message) => {
    const r = largestRegister();
    grow(r);
    const msg = refusal(() => validateRegister(r));
    expect(msg).toContain(`${field}: `);
    expect(msg).toContain(message);
  });
});
