/** The agent's look at a rank's ports before it spawns the rank (ports.ts). */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { firstPortInUse, portFree } from './ports.js';

describe('ports in use on this host', () => {
  it('finds a port another process holds (on any address), and lets a free one be bound again at once', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const held = (holder.address() as { port: number }).port;
    try {
      expect(await portFree(held)).toBe(false);
      const free = await new Promise<number>((r) => {
        const s = createServer().listen(0, () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => r(p));
        });
      });
      expect(await portFree(free)).toBe(true);
      expect(await firstPortInUse([free, held])).toBe(held);
      expect(await firstPortInUse([free, 0])).toBeUndefined(); // 0: no port
      // The look leaves nothing bound: the rank can bind the free port.
      await new Promise<void>((resolve, reject) => {
        const s = createServer().once('error', reject).listen(free, () => s.close(() => resolve()));
      });
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });
});
