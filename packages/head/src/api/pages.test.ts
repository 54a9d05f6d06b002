import { describe, expect, it } from 'vitest';
import { PAGE_BYTES } from '@muster/contracts';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, pageKey, paginate, timeKey, type PageQuery } from './pages.js';
import { refusal } from './pages.test-support.js';

const key = pageKey('cluster-token');
const ids = Array.from({ length: 2_345 }, (_, i) => `n-${String(i).padStart(5, '0')}`);

function query(req: { pageSize: number; pageToken: string }, over: Partial<PageQuery<string>> = {}): PageQuery<string> {
  return { list: 'nodes', filters: { state: 0 }, req, items: [...ids].reverse(), sortKey: (s) => s, sizeOf: () => 100, ...over };
}

function walk(pageSize: number, over: Partial<PageQuery<string>> = {}): string[][] {
  const pages: string[][] = [];
  let pageToken = '';
  do {
    const page = paginate(key, query({ pageSize, pageToken }, over));
    pages.push(page.items);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return pages;
}

describe('list pages', () => {
  it('cover every item exactly once, in key order, at the asked, default and capped sizes', () => {
    for (const [asked, expected] of [[100, 100], [0, DEFAULT_PAGE_SIZE], [5_000, MAX_PAGE_SIZE]] as const) {
      const pages = walk(asked);
      expect(pages.flat()).toEqual(ids);
      expect(pages[0]).toHaveLength(expected);
      expect(pages.at(-1)!.length).toBeGreaterThan(0);
    }
  });

  it('end early to stay under PAGE_BYTES, but always carry one item', () => {
    const pages = walk(1000, { sizeOf: () => PAGE_BYTES / 10 + 1 });
    expect(pages[0]).toHaveLength(9);
    expect(pages.flat()).toEqual(ids);
    expect(walk(1000, { sizeOf: () => PAGE_BYTES * 2 }).slice(0, 3).map((p) => p.length)).toEqual([1, 1, 1]);
  });

  it('resume after the last key: an item added before it is skipped, one after it is seen, a removed one is not', () => {
    const few = ids.slice(0, 50);
    const first = paginate(key, query({ pageSize: 10, pageToken: '' }, { items: few }));
    const items = [...few.slice(1).filter((id) => id !== ids[20]), 'n-00000a', 'zz'];
    const next = paginate(key, query({ pageSize: 1000, pageToken: first.nextPageToken }, { items }));
    expect(next.items[0]).toBe(ids[10]);
    expect(next.items).toHaveLength(40);
    expect(next.items).not.toContain(ids[20]);
    expect(next.items).toContain('zz');
    expect(next.items).not.toContain('n-00000a');
    expect(next.nextPageToken).toBe('');
  });

  it('refuse a token from another list, other filters, another cluster, or edited, naming page_token', () => {
    const token = paginate(key, query({ pageSize: 10, pageToken: '' })).nextPageToken;
    const again = (pageToken: string, over: Partial<PageQuery<string>> = {}, k = key) => refusal(() => paginate(k, query({ pageSize: 10, pageToken }, over)));
    expect(again(token, { list: 'gangs' })).toMatch(/^MUSTER_INVALID_ARGUMENT page_token page_token belongs to the nodes list, not the gangs list/);
    expect(again(token, { filters: { state: 1 } })).toMatch(/^MUSTER_INVALID_ARGUMENT page_token .*other filters/);
    expect(again(token, {}, pageKey('other-cluster'))).toMatch(/^MUSTER_INVALID_ARGUMENT page_token .*not one this cluster issued/);
    const [body, tag] = token.split('.') as [string, string];
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), k: 'n-02000' })).toString('base64url');
    expect(again(`${forged}.${tag}`)).toMatch(/not one this cluster issued/);
    expect(again('garbage')).toMatch(/^MUSTER_INVALID_ARGUMENT page_token page_token is malformed/);
    expect(paginate(key, query({ pageSize: 10, pageToken: token }, { filters: { state: 0 } })).items[0]).toBe(ids[10]);
  });

  it('filters hash by value, not by key order', () => {
    const token = paginate(key, query({ pageSize: 10, pageToken: '' }, { filters: { a: 1, b: { x: '1', y: '2' } } })).nextPageToken;
    expect(paginate(key, query({ pageSize: 10, pageToken: token }, { filters: { b: { y: '2', x: '1' }, a: 1 } })).items).toHaveLength(10);
  });

  it('orders time keys by time, then id', () => {
    expect([timeKey(20, 'a'), timeKey(3, 'b'), timeKey(3, 'a')].sort()).toEqual([timeKey(3, 'a'), timeKey(3, 'b'), timeKey(20, 'a')]);
  });
});
