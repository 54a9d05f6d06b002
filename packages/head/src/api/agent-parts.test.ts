/**
 * The agent stream's snapshots in parts (common/agent-parts.ts): an
 * inventory sent in parts is handed to the gang controller once, after its
 * last part, with the shards of every part (a shard of a later part is never
 * taken for gone); a part past the reader's bounds ends the stream by name;
 * and a reservation snapshot too large for one part reaches the agent in
 * parts within AGENT_PART_BYTES, `more` on all but the last.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_MAX_ITEMS, AGENT_PART_BYTES, shardInventoryParts } from '@muster/common';
import { HeadMessage as HeadMessageCodec, type AgentMessage, type ReservationSnapshot, type ShardStatusReport } from '@muster/proto';
import { agentServiceForTest, registration } from './agent-stream.test-support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(snapshot: ReservationSnapshot = { groups: [], more: false }) {
  const inventories: ShardStatusReport[][] = [];
  const noop = () => undefined;
  const agents = await agentServiceForTest('agent-parts', {
    shards: { shardStatus: async () => undefined, shardInventory: async (_node, shards) => void inventories.push(shards) },
    reservations: { snapshotFor: () => snapshot, acked: noop },
  }, cleanups);
  const open = async (node: string) => {
    const stream = agents.open(node);
    stream.call.emit('data', { msg: { $case: 'register', value: registration(node) } } satisfies AgentMessage);
    await expect.poll(() => stream.call.written[0]?.msg?.$case).toBe('registered');
    return stream;
  };
  return { open, inventories };
}

const report = (rank: number): ShardStatusReport => ({
  gangId: 'g', attempt: 1, rank, phase: 'ready', pid: 1000 + rank, exitCode: undefined, signal: '', reason: '', stopped: false, logTail: 'x'.repeat(4096), portInUse: 0, warmupMs: 0,
} as ShardStatusReport);
const heartbeat = (seq: number): AgentMessage => ({ msg: { $case: 'heartbeat', value: { seq, sentAtMs: Date.now() } } });

describe('an inventory in parts', () => {
  it('is reconciled once, after the last part, with the shards of every part', async () => {
    const { open, inventories } = await serve();
    const s = await open('n1');
    const parts = shardInventoryParts(Array.from({ length: 200 }, (_, i) => report(i)));
    expect(parts.length).toBeGreaterThan(2);
    for (const p of parts.slice(0, -1)) s.call.emit('data', { msg: { $case: 'shardInventory', value: p } } satisfies AgentMessage);
    s.call.emit('data', heartbeat(1)); // handled in order: its ack proves the parts before it were read
    await expect.poll(() => s.call.written.some((m) => m.msg?.$case === 'heartbeatAck')).toBe(true);
    expect(inventories).toEqual([]); // not one part taken for the whole
    s.call.emit('data', { msg: { $case: 'shardInventory', value: parts.at(-1)! } } satisfies AgentMessage);
    await expect.poll(() => inventories.length).toBe(1);
    expect(inventories[0]!.map((r) => r.rank)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it("past the reader's bound ends the stream, naming it", async () => {
    const { open, inventories } = await serve();
    const s = await open('n1');
    const one = { ...report(0), logTail: '' };
    const many = Array.from({ length: AGENT_MAX_ITEMS + 1 }, () => one);
    s.call.emit('data', { msg: { $case: 'shardInventory', value: { shards: many, more: true } } } satisfies AgentMessage);
    expect((await s.failed).message).toMatch(/node n1: its shard inventory a snapshot in parts passed the reader's bounds/);
    expect(inventories).toEqual([]);
  });
});

describe('a reservation snapshot too large for one part', () => {
  it('reaches the agent in parts within AGENT_PART_BYTES, more on all but the last', async () => {
    const groups = Array.from({ length: 4000 }, (_, i) => ({
      groupId: `pg-${i}`,
      bundles: [{ bundleIndex: 0, nodeId: 'n1', gpuIndices: [], migUuids: [], cpuMillis: 1, memoryBytes: 1, custom: { [`r${'x'.repeat(200)}`]: 1 }, gpuUuids: [] }],
    }));
    const { open } = await serve({ groups, more: false });
    const s = await open('n1');
    await expect.poll(() => s.call.written.filter((m) => m.msg?.$case === 'reservations').length).toBeGreaterThan(2);
    const parts = s.call.written.flatMap((m) => (m.msg?.$case === 'reservations' ? [m.msg.value] : []));
    for (const m of s.call.written) expect(HeadMessageCodec.encode(m).finish().length).toBeLessThanOrEqual(AGENT_PART_BYTES + 8);
    expect(parts.map((p) => p.more).filter((more) => !more)).toHaveLength(1);
    expect(parts.at(-1)!.more).toBe(false);
    expect(parts.flatMap((p) => p.groups.map((g) => g.groupId))).toEqual(groups.map((g) => g.groupId));
  });
});
