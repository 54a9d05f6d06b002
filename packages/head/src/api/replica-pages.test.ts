import { describe, expect, it } from 'vitest';
import { PAGE_BYTES } from '@muster/contracts';
import { ReplicaGroup, ReplicaGroupSpec, ShardTemplate, type Replica } from '@muster/proto';
import { pageKey, paginate } from './pages.js';
import { refusal } from './pages.test-support.js';
import { DEFAULT_REPLICA_PAGE_SIZE, FIRST_PAGE, replicaPage, withoutReplicas, type ReplicaPageRequest } from './replica-pages.js';

const key = pageKey('cluster-token');
const STATES = ['starting', 'ready', 'ready', 'draining', 'failed'];

/** A replica as the controller keeps it: ids, subject, a message of `messageBytes`. */
function replica(i: number, group: string, messageBytes = 40): Replica {
  const id = `r-${i.toString(36).padStart(8, '0')}`;
  return {
    id, revision: i % 3 === 0 ? 'rev-new' : 'rev-old', state: STATES[i % STATES.length]!,
    placementGroupId: `pg-${id}`, gangId: `gang-${id}`, subject: `muster.rg.${group}.${id}`,
    message: 'x'.repeat(messageBytes), createdAtMs: 1_700_000_000_000 + Math.floor(i / 2), replaces: '',
    load: { timeMs: 1_700_000_000_000, inFlight: 3, queued: 1, engineWaiting: 2, engineRunning: 5, engineKvCache: 0.5, resources: undefined, custom: {} },
  };
}

function group(n: number, name = 'big', messageBytes?: number, specBytes = 0): ReplicaGroup {
  const spec = ReplicaGroupSpec.decode(new Uint8Array());
  spec.name = name;
  spec.template = { ...ShardTemplate.decode(new Uint8Array()), command: 'serve', env: { BIG: 'y'.repeat(specBytes) } };
  return {
    ...ReplicaGroup.decode(new Uint8Array()), name, spec, desired: n, revision: 'rev-new', membershipVersion: 7, message: 'ok',
    // Stored in arrival order, which is not the page order: pages sort by creation time, then id.
    replicas: Array.from({ length: n }, (_, i) => replica(n - 1 - i, name, messageBytes)),
  };
}

const req = (over: Partial<ReplicaPageRequest> = {}): ReplicaPageRequest => ({ ...FIRST_PAGE, ...over });

/** Every page of `g` under `over`, each as its encoded answer would be. */
function walk(g: ReplicaGroup, over: Partial<ReplicaPageRequest> = {}): ReplicaGroup[] {
  const pages: ReplicaGroup[] = [];
  let replicaPageToken = '';
  do {
    const page = replicaPage(key, g, req({ ...over, replicaPageToken }));
    pages.push(page);
    replicaPageToken = page.replicaPage!.nextPageToken;
  } while (replicaPageToken && pages.length < 10_000);
  return pages;
}

const byCreation = (rs: Replica[]) => [...rs].sort((a, b) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : 1)).map((r) => r.id);

describe('replica pages', () => {
  it('cover every replica exactly once, oldest first, at the asked, default and capped sizes', () => {
    const g = group(2_345);
    for (const [asked, expected] of [[300, 300], [0, DEFAULT_REPLICA_PAGE_SIZE], [5_000, 1000]] as const) {
      const pages = walk(g, { replicaPageSize: asked });
      expect(pages.flatMap((p) => p.replicas.map((r) => r.id))).toEqual(byCreation(g.replicas));
      expect(pages[0]!.replicas).toHaveLength(expected);
      expect(pages.at(-1)!.replicaPage!.nextPageToken).toBe('');
    }
  });

  it('carry the counts of every replica, whatever the page and filters', () => {
    const g = group(1_000);
    const want = { starting: 200, ready: 400, draining: 200, failed: 200 };
    for (const page of [...walk(g, { replicaPageSize: 100 }), ...walk(g, { replicaStates: ['failed'] })]) {
      expect(page.replicaPage!.total).toBe(1_000);
      expect(page.replicaPage!.byState).toEqual(want);
    }
  });

  it('filter by state and revision; the order of the states does not matter to a token', () => {
    const g = group(1_000);
    const failedNew = g.replicas.filter((r) => (r.state === 'failed' || r.state === 'draining') && r.revision === 'rev-new');
    const first = replicaPage(key, g, req({ replicaPageSize: 10, replicaStates: ['failed', 'draining'], replicaRevision: 'rev-new' }));
    const whole = walk(g, { replicaPageSize: 10, replicaStates: ['draining', 'failed', 'failed'], replicaRevision: 'rev-new' });
    expect(whole.flatMap((p) => p.replicas.map((r) => r.id))).toEqual(byCreation(failedNew));
    // The first page's token goes on with the same states in another order.
    const next = replicaPage(key, g, req({ replicaPageSize: 1000, replicaStates: ['draining', 'failed'], replicaRevision: 'rev-new', replicaPageToken: first.replicaPage!.nextPageToken }));
    expect([...first.replicas, ...next.replicas].map((r) => r.id)).toEqual(byCreation(failedNew));
    expect(replicaPage(key, g, req({ replicaStates: ['stopping'] })).replicas).toEqual([]);
  });

  it('refuse a token of another group, another list, other filters, another cluster or edited, naming page_token', () => {
    const g = group(100);
    const token = replicaPage(key, g, req({ replicaPageSize: 10 })).replicaPage!.nextPageToken;
    const again = (over: Partial<ReplicaPageRequest>, on = g, k = key) => refusal(() => replicaPage(k, on, req({ replicaPageSize: 10, replicaPageToken: token, ...over })));
    expect(again({}, group(100, 'other'))).toMatch(/^MUSTER_INVALID_ARGUMENT page_token page_token belongs to the replicas of big list, not the replicas of other list/);
    expect(again({ replicaStates: ['ready'] })).toMatch(/^MUSTER_INVALID_ARGUMENT page_token .*other filters/);
    expect(again({ replicaRevision: 'rev-old' })).toMatch(/^MUSTER_INVALID_ARGUMENT page_token .*other filters/);
    expect(again({}, g, pageKey('other-cluster'))).toMatch(/^MUSTER_INVALID_ARGUMENT page_token .*not one this cluster issued/);
    const [body, tag] = token.split('.');
    const edited = JSON.parse(Buffer.from(body!, 'base64url').toString()) as { k: string };
    edited.k = '0';
    expect(again({ replicaPageToken: `${Buffer.from(JSON.stringify(edited)).toString('base64url')}.${tag}` })).toMatch(/not one this cluster issued/);
    expect(again({ replicaPageToken: 'forged' })).toMatch(/^MUSTER_INVALID_ARGUMENT page_token page_token is malformed/);
    // A node list's token is no replica token, and the other way round.
    const nodes = paginate(key, { list: 'nodes', filters: {}, req: { pageSize: 1, pageToken: '' }, items: ['a', 'b'], sortKey: (s) => s, sizeOf: () => 1 }).nextPageToken;
    expect(again({ replicaPageToken: nodes })).toMatch(/belongs to the nodes list/);
    expect(refusal(() => paginate(key, { list: 'nodes', filters: {}, req: { pageSize: 1, pageToken: token }, items: ['a'], sortKey: (s) => s, sizeOf: () => 1 }))).toMatch(/belongs to the replicas of big list, not the nodes list/);
  });

  it('refuse too many states by name', () => {
    expect(refusal(() => replicaPage(key, group(1), req({ replicaStates: Array.from({ length: 17 }, () => 'ready') })))).toMatch(/^MUSTER_INVALID_ARGUMENT replica_states /);
  });

  it('keep every answer under PAGE_BYTES at 10,000 replicas with long messages and a large spec', () => {
    const g = group(10_000, 'big', 1_500, 200_000);
    expect(ReplicaGroup.encode(g).finish().length).toBeGreaterThan(10 * PAGE_BYTES); // all at once: far over
    const pages = walk(g);
    expect(pages.flatMap((p) => p.replicas).length).toBe(10_000);
    for (const p of pages) expect(ReplicaGroup.encode(p).finish().length).toBeLessThan(PAGE_BYTES);
    expect(pages[0]!.replicas.length).toBeLessThan(DEFAULT_REPLICA_PAGE_SIZE); // ended by bytes, not by count
  });

  it('a walk sees every replica that lived through it once, with replicas added and removed between pages', () => {
    const g = group(300);
    const first = replicaPage(key, g, req({ replicaPageSize: 100 }));
    const gone = first.replicas[5]!.id;
    const later = { ...g, replicas: [...g.replicas.filter((r) => r.id !== gone && r.id !== byCreation(g.replicas)[250]), { ...replica(999, 'big'), createdAtMs: 1_800_000_000_000 }] };
    const next = replicaPage(key, later, req({ replicaPageSize: 1000, replicaPageToken: first.replicaPage!.nextPageToken }));
    const seen = [...first.replicas, ...next.replicas].map((r) => r.id);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toHaveLength(300 - 1 + 1);
    expect(seen.at(-1)).toBe(replica(999, 'big').id);
  });

  it('list answers carry counts and no replicas', () => {
    const g = withoutReplicas(group(2_000, 'big', 1_500));
    expect(g.replicas).toEqual([]);
    expect(g.replicaPage!.total).toBe(2_000);
    expect(g.replicaPage!.byState.ready).toBe(800);
    expect(ReplicaGroup.encode(g).finish().length).toBeLessThan(1_000);
  });
});
