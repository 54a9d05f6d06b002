/**
 * A large log tail does not delay heartbeats (issue 15 point 7): the agent
 * sends it in small chunks paced by its stream, the head relays it paced by
 * the reader. With a node declared dead after 600 ms of silence, a slow read
 * of a 4 MiB tail leaves the node ALIVE, with no node.dead event (read from
 * the event replay up to its end marker, not by waiting); a tail over the
 * limit is refused by name.
 */
import { describe, expect, it } from 'vitest';
import type { Cluster, Gang } from '@muster/sdk';
import { useCluster } from '@muster/testing/vitest';

const MiB = 1024 * 1024;
/** Writes exactly 4 MiB of lines, the last ending in "DONE", then idles. */
const writer = `
const line = 'x'.repeat(1023) + '\\n';
let left = ${4 * MiB} - 5;
const step = () => { while (left >= line.length) { left -= line.length; if (!process.stdout.write(line)) return void process.stdout.once('drain', step); } process.stdout.write('x'.repeat(left) + 'DONE\\n'); setInterval(() => {}, 1 << 30); };
step();`;

describe('log tails', () => {
  let sdk: Cluster;
  useCluster({ workers: 1, headArgs: ['--heartbeat-interval-ms', '100', '--dead-after-ms', '600'] }, (fx) => ({ sdk } = fx));

  it('reads a 4 MiB tail slowly while the node stays ALIVE; a tail over 4 MiB is refused', async () => {
    const pg = await sdk.placementGroups.create({ name: 'logs-pg', bundles: [{ gpus: 1 }] });
    await pg.ready({ timeout: 10_000 });
    const gang: Gang = await sdk.gangs.launch({ name: 'logs', placementGroup: pg.name, tp: 1, pp: 1, template: { command: process.execPath, args: ['-e', writer] } });
    await gang.ready({ timeout: 15_000 });
    const nodeId = gang.ranks[0]!.nodeId;
    // Wait until the whole log is written (its last bytes say so).
    for (let tail = ''; !tail.endsWith('DONE\n'); ) {
      tail = '';
      for await (const c of gang.logs({ tailBytes: 16 })) tail += Buffer.from(c).toString();
    }

    let bytes = 0;
    let text = '';
    for await (const c of gang.logs({ tailBytes: 4 * MiB })) {
      bytes += c.length;
      text = (text + Buffer.from(c).toString()).slice(-16);
      await new Promise((r) => setTimeout(r, 2)); // a slow reader
    }
    expect(bytes).toBe(4 * MiB);
    expect(text.endsWith('DONE\n')).toBe(true);

    expect((await sdk.node(nodeId)).state).toBe('alive');
    const dead = [];
    for await (const e of sdk.events({ replay: true, kinds: ['node.dead'], untilReplayed: true })) dead.push(e);
    expect(dead).toEqual([]);

    const refused = await (async () => {
      for await (const _ of gang.logs({ tailBytes: 4 * MiB + 1 })) void _;
    })().then(() => undefined, (e: unknown) => e as Error);
    expect(refused?.message).toMatch(/tail_bytes 4194305 is over the limit of 4194304/);
    await gang.stop();
  }, 120_000);
});
