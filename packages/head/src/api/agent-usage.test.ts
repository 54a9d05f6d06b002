/**
 * An agent's usage report (AgentMessage.usage) on the agent service: handed
 * to the replica group controller under the node id the stream registered
 * (bound to the agent's node certificate), whatever entries it carries;
 * nothing before registration; and a heartbeat sent right after it is
 * acknowledged in order (the hand-over is synchronous: no I/O in between).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentMessage, NodeUsage } from '@muster/proto';
import { agentServiceForTest, registration } from './agent-stream.test-support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve() {
  const heard: Array<[string, NodeUsage]> = [];
  const { open } = await agentServiceForTest('agent-usage', { usage: { nodeUsage: (nodeId, u) => void heard.push([nodeId, u]) } }, cleanups);
  return { open, heard };
}

const usage = (group: string, replicaId: string, cpu: number): AgentMessage => ({
  msg: { $case: 'usage', value: { sampledAtMs: Date.now(), replicas: [{ group, replicaId, usage: { cpu, gpus: 0 } }] } },
});

describe('usage reports on the agent stream', () => {
  it('are filed under the node the stream registered, and a heartbeat right behind one is answered in order', async () => {
    const { open, heard } = await serve();
    const n1 = open('n1');
    n1.call.emit('data', { msg: { $case: 'register', value: registration('n1') } } satisfies AgentMessage);
    await expect.poll(() => n1.call.written[0]?.msg?.$case).toBe('registered');
    // Agents send usage only to a head that says it reads it (an older one would end the stream).
    expect(n1.call.written[0]).toMatchObject({ msg: { value: { acceptsNodeUsage: true } } });
    const n2 = open('n2');
    n2.call.emit('data', { msg: { $case: 'register', value: registration('n2') } } satisfies AgentMessage);
    await expect.poll(() => n2.call.written[0]?.msg?.$case).toBe('registered');

    n1.call.emit('data', usage('g', 'r1', 1));
    n2.call.emit('data', usage('g', 'r1', 100)); // n2 speaks for r1: filed under n2, where the controller finds no rank of r1
    n1.call.emit('data', { msg: { $case: 'heartbeat', value: { seq: 7, sentAtMs: Date.now() } } } satisfies AgentMessage);
    await expect.poll(() => n1.call.written.some((m) => m.msg?.$case === 'heartbeatAck')).toBe(true);
    expect(heard.map(([node, u]) => [node, u.replicas[0]?.usage?.cpu])).toEqual([['n1', 1], ['n2', 100]]);
    expect(n1.call.written.at(-1)).toEqual({ msg: { $case: 'heartbeatAck', value: { seq: 7 } } });
  });

  it('before a registration is no registration: the stream is refused and nothing is filed', async () => {
    const { open, heard } = await serve();
    const s = open('n1');
    s.call.emit('data', usage('g', 'r1', 1));
    expect((await s.failed).message).toMatch(/register/);
    expect(heard).toEqual([]);
  });
});
