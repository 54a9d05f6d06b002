/**
 * The gateway's group directory in front of a stand-in head: it routes by
 * the last list it read while the head does not answer, spaces its reads
 * (also failed ones), and names for each model the group that routes it.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, MusterError, type Cluster } from '@muster/sdk';
import { GroupDirectory } from './gateway-groups.js';

const view = (name: string, models: string[]) => ({ toJSON: () => ({ name, deleting: false, replicas: [], replicasByState: {}, spec: { httpPort: 'http', models } }) });

/** A head whose list answers `groups`, or fails while `down` is set; counts its reads. */
function standIn(groups: ReturnType<typeof view>[]) {
  const head = { down: false, reads: 0 };
  const cluster = {
    replicaGroups: {
      list: () => {
        head.reads++;
        return head.down ? Promise.reject(new MusterError(ErrorCode.UNAVAILABLE, 'head down')) : Promise.resolve(groups);
      },
    },
  } as unknown as Cluster;
  return { head, cluster };
}

describe('GroupDirectory', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['Date'] }));
  afterEach(() => vi.useRealTimers());

  it('routes by the last list read while the head is down, and reads again at most once a second', async () => {
    const { head, cluster } = standIn([view('llm', ['a'])]);
    const d = new GroupDirectory(cluster);
    expect((await d.forModel('a'))?.name).toBe('llm');
    head.down = true;
    vi.advanceTimersByTime(1_100);
    expect((await d.forModel('a'))?.name).toBe('llm');
    expect((await d.models()).map((m) => m.id)).toEqual(['a']);
    for (let i = 0; i < 20; i++) expect(await d.forModel('unknown')).toBeUndefined();
    expect(await d.info('llm')).toMatchObject({ group: { name: 'llm' }, known: true });
    expect(head.reads).toBe(2); // the first read and one failed try, not one per request
    vi.advanceTimersByTime(1_100);
    head.down = false;
    await d.forModel('a');
    expect(head.reads).toBe(3);
  });

  it('fails requests with the head\'s error until a first list was read, and says a name it never saw is not known absent', async () => {
    const { head, cluster } = standIn([view('llm', ['a'])]);
    head.down = true;
    const d = new GroupDirectory(cluster);
    await expect(d.forModel('a')).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    await expect(d.models()).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect(await d.info('llm')).toEqual({ group: undefined, known: false });
    head.down = false;
    vi.advanceTimersByTime(1_100);
    expect(await d.info('nope')).toEqual({ group: undefined, known: true });
  });

  it('lists each model once, with the group that routes it', async () => {
    const { cluster } = standIn([view('alpha', ['m']), view('beta', ['m', 'n'])]);
    const d = new GroupDirectory(cluster);
    expect((await d.models()).map((m) => [m.id, m.group.name])).toEqual([['m', 'alpha'], ['n', 'beta']]);
    expect((await d.forModel('m'))?.name).toBe('alpha');
  });
});
