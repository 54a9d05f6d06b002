/** The fault-injecting store refuses exactly the writes it was armed for, and nothing else. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedStore } from './embedded.js';
import { FaultyStore } from './faulty.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

async function faulty(): Promise<FaultyStore> {
  const dir = await mkdtemp(join(tmpdir(), 'muster-faulty-'));
  const inner = await EmbeddedStore.open(dir);
  cleanup.push(async () => {
    await inner.close();
    await rm(dir, { recursive: true, force: true });
  });
  return new FaultyStore(inner);
}

const bytes = (s: string) => new TextEncoder().encode(s);

describe('FaultyStore', () => {
  it('fails matching writes while armed, passes reads and other prefixes, and heals', async () => {
    const s = await faulty();
    await s.put('/a/1', bytes('x'));
    s.failWrites({ prefix: '/a/' });
    await expect(s.put('/a/2', bytes('y'))).rejects.toMatchObject({ code: 'MUSTER_UNAVAILABLE' });
    await expect(s.txn({ compare: [], success: [{ type: 'delete', key: '/a/1' }] })).rejects.toThrow(/injected store fault/);
    await s.put('/b/1', bytes('z'));
    expect((await s.get('/a/1'))?.value).toEqual(bytes('x'));
    expect(await s.get('/a/2')).toBeUndefined();
    expect(s.failed).toBe(2);
    s.heal();
    await s.put('/a/2', bytes('y'));
    expect((await s.range('/a/')).kvs.map((kv) => kv.key)).toEqual(['/a/1', '/a/2']);
  });

  it('heals by itself after `times` refusals', async () => {
    const s = await faulty();
    s.failWrites({ times: 1 });
    await expect(s.put('/k', bytes('1'))).rejects.toThrow(/refused/);
    await s.put('/k', bytes('2'));
    expect((await s.get('/k'))?.value).toEqual(bytes('2'));
  });
});
