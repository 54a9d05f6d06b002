/** The agent's log sending: small chunks, paced by the head's credits and by its stream's buffer. */
import { describe, expect, it } from 'vitest';
import { createLogger } from '@muster/common/log';
import type { AgentMessage, HeadMessage } from '@muster/proto';
import { LOG_CHUNK_BYTES, ShardAgent } from './shard-agent.js';
import type { ShardSupervisor } from './shards/types.js';

const MiB = 1024 * 1024;
const settled = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

function agentWithLog(bytes: number) {
  const supervisor = {
    list: () => [{ key: 'g/1/0', gangId: 'g', attempt: 1, rank: 0, phase: 'ready' }],
    async *readLog() {
      for (let left = bytes; left > 0; left -= 256 * 1024) yield new Uint8Array(Math.min(left, 256 * 1024));
    },
  } as unknown as ShardSupervisor;
  const agent = new ShardAgent(supervisor, createLogger('test', { level: 'silent' }));
  const chunks: Array<{ data: Uint8Array; eof: boolean }> = [];
  agent.attach((m: AgentMessage) => {
    if (m.msg?.$case === 'logChunk') chunks.push(m.msg.value);
    return true;
  });
  const tell = (msg: HeadMessage['msg']) => agent.handle({ msg });
  return { chunks, tell, sent: () => chunks.reduce((n, c) => n + c.data.length, 0) };
}

describe('agent log chunks', () => {
  it('sends chunks of at most 16 KiB, never more than the window ahead of the credits', async () => {
    const { chunks, tell, sent } = agentWithLog(3 * MiB);
    tell({ $case: 'logRequest', value: { requestId: 1, gangId: 'g', attempt: 1, rank: 0, tailBytes: 3 * MiB, follow: false, windowBytes: MiB } });
    await settled();
    expect(sent()).toBe(MiB); // the window, and no more until credited
    expect(Math.max(...chunks.map((c) => c.data.length))).toBe(LOG_CHUNK_BYTES);
    tell({ $case: 'logCredit', value: { requestId: 1, bytes: MiB / 2 } });
    await settled();
    expect(sent()).toBe(MiB + MiB / 2);
    tell({ $case: 'logCredit', value: { requestId: 1, bytes: MiB } });
    await settled();
    expect(sent()).toBe(2 * MiB + MiB / 2);
    tell({ $case: 'logCredit', value: { requestId: 1, bytes: MiB } });
    await settled();
    expect(sent()).toBe(3 * MiB);
    expect(chunks.at(-1)!.eof).toBe(true);
  });

  it('without a window (a head that predates credits) sends the whole log', async () => {
    const { tell, sent } = agentWithLog(2 * MiB);
    tell({ $case: 'logRequest', value: { requestId: 2, gangId: 'g', attempt: 1, rank: 0, tailBytes: 2 * MiB, follow: false, windowBytes: 0 } });
    await settled();
    expect(sent()).toBe(2 * MiB);
  });
});

describe('the shard inventory sent on registration', () => {
  const inventory = (inParts: boolean) => {
    // 120 ranks with 4 KiB log tails: ~480 KiB, past one 256 KiB part.
    const supervisor = { list: () => Array.from({ length: 120 }, (_, rank) => ({ key: `g/1/${rank}`, gangId: 'g', attempt: 1, rank, phase: 'ready', logTail: 'x'.repeat(4096) })) } as unknown as ShardSupervisor;
    const sent: Array<{ shards: unknown[]; more: boolean }> = [];
    new ShardAgent(supervisor, createLogger('test', { level: 'silent' })).attach((m: AgentMessage) => {
      if (m.msg?.$case === 'shardInventory') sent.push(m.msg.value);
      return true;
    }, undefined, inParts);
    return sent;
  };

  it('goes in parts to a head that joins them, and whole to an older head (which would take earlier parts for gone)', () => {
    const parts = inventory(true);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.map((p) => p.more)).toEqual([...parts.slice(1).map(() => true), false]);
    expect(parts.flatMap((p) => p.shards)).toHaveLength(120);
    const whole = inventory(false);
    expect(whole).toHaveLength(1);
    expect(whole[0]).toMatchObject({ more: false });
    expect(whole[0]!.shards).toHaveLength(120);
  });
});
