/** metricsListen: the wanted port when it is free, a free one (port 0) when it is taken. */
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, metricsListen, portFree } from './ports.js';

describe('metricsListen', () => {
  let holder: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((r) => (holder ? holder.close(() => r()) : r()));
    holder = undefined;
  });

  it('keeps a free port, falls back to port 0 when it is taken, and picks a free one when none is wanted', async () => {
    const port = await freePort();
    expect(await metricsListen(port)).toBe(`127.0.0.1:${port}`);
    holder = createServer();
    await new Promise<void>((r) => holder!.listen(port, '127.0.0.1', () => r()));
    expect(await portFree(port)).toBe(false);
    expect(await metricsListen(port)).toBe('127.0.0.1:0');
    expect(await metricsListen(undefined)).toBe('127.0.0.1:0');
    expect(await metricsListen(0)).toBe('127.0.0.1:0');
  });
});
