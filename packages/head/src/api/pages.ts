/**
 * Paging of the head's list APIs (ListNodes, ListPlacementGroups, ListGangs,
 * ListReplicaGroups), so no reply grows with the cluster.
 *
 * Keyset paging: each list has a stable sort key per item (a node's id, a
 * group's creation time and id, ...); a page is the first `pageSize` items
 * whose key is after the last key of the previous page. Items created or
 * removed between pages never shift the others, so a walk sees every item
 * that lived through it exactly once.
 *
 * A page holds at most `page_size` items (default 500, at most 1,000) and at
 * most PAGE_BYTES (1 MiB) of encoded records, so no reply nears the 4 MiB
 * message limit of @muster/contracts however large the cluster.
 *
 * The page token is opaque to clients: base64url of {list, filters hash, last
 * key}, then an HMAC-SHA256 tag keyed by the head's page key (derived from the
 * cluster token, so every head of the cluster accepts the tokens of the
 * others and a failover does not break a walk). A token from another list,
 * from the same list with other filters, or edited by hand is refused with
 * MUSTER_INVALID_ARGUMENT naming `page_token`.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ErrorCode, MusterError } from '@muster/common';
import { PAGE_BYTES } from '@muster/contracts';

/** Items per page when the request does not say (page_size 0). */
export const DEFAULT_PAGE_SIZE = 500;
/** The most items in one page; a larger page_size is lowered to this. */
export const MAX_PAGE_SIZE = 1000;

export interface PageRequest {
  pageSize: number;
  pageToken: string;
}

export interface Page<T> {
  items: T[];
  /** "" on the last page. */
  nextPageToken: string;
}

/** The key page tokens are signed with: from the cluster token, or random for a head without one. */
export function pageKey(clusterToken: string): Buffer {
  if (!clusterToken) return randomBytes(32);
  return createHash('sha256').update('muster page token v1\0').update(clusterToken).digest();
}

interface TokenBody {
  /** The list ("nodes", "placement-groups", ...). */
  l: string;
  /** Hash of the filters the walk began with. */
  f: string;
  /** Sort key of the last item sent. */
  k: string;
}

const TAG_BYTES = 16;

function filtersHash(filters: unknown): string {
  return createHash('sha256').update(stableJson(filters)).digest('base64url').slice(0, 16);
}

/** JSON with object keys sorted, so equal filters hash the same whatever their key order. */
function stableJson(v: unknown): string {
  if (v === undefined) return 'null';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(',')}}`;
}

function tag(key: Buffer, body: string): Buffer {
  return createHmac('sha256', key).update(body).digest().subarray(0, TAG_BYTES);
}

export function encodeToken(key: Buffer, body: TokenBody): string {
  const b = Buffer.from(JSON.stringify(body)).toString('base64url');
  return `${b}.${tag(key, b).toString('base64url')}`;
}

function refuse(list: string, why: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, `page_token ${why}: pass the next_page_token of the previous page of this ${list} list with the same filters, or none to start`, {
    details: { field: 'page_token' },
  });
}

/** The last key of the previous page, after checking the token belongs to this list and filters. */
export function decodeToken(key: Buffer, list: string, filters: unknown, token: string): string {
  const [b, t, extra] = token.split('.');
  if (!b || !t || extra !== undefined || token.length > 4096) throw refuse(list, 'is malformed');
  const given = Buffer.from(t, 'base64url');
  const want = tag(key, b);
  if (given.length !== want.length || !timingSafeEqual(given, want)) throw refuse(list, 'is not one this cluster issued');
  let body: TokenBody;
  try {
    body = JSON.parse(Buffer.from(b, 'base64url').toString('utf8')) as TokenBody;
  } catch {
    throw refuse(list, 'is malformed');
  }
  if (body.l !== list) throw refuse(list, `belongs to the ${body.l} list, not the ${list} list`);
  if (body.f !== filtersHash(filters)) throw refuse(list, 'was issued for other filters');
  if (typeof body.k !== 'string') throw refuse(list, 'is malformed');
  return body.k;
}

export function pageSizeOf(req: { pageSize: number }): number {
  if (!req.pageSize) return DEFAULT_PAGE_SIZE;
  return Math.min(req.pageSize, MAX_PAGE_SIZE);
}

export interface PageQuery<T> {
  /** The list's name, bound into its tokens ("nodes", "gangs", ...). */
  list: string;
  /** The request's filters, bound into its tokens (a walk cannot change them). */
  filters: unknown;
  req: PageRequest;
  /** The items the filters keep, in any order. */
  items: Iterable<T>;
  /** The stable key pages are ordered and resumed by. */
  sortKey: (item: T) => string;
  /** Encoded size of an item: a page ends early rather than pass PAGE_BYTES. */
  sizeOf: (item: T) => number;
  /** The most bytes of items in one page (default PAGE_BYTES): less where the reply carries more beside them. */
  maxBytes?: number;
}

/**
 * One page of the items in `sortKey` order: at most the page size, and at
 * most PAGE_BYTES of records (at least one item, however large). The sort
 * costs O(n log n) over the filtered items, cheap beside encoding them.
 */
export function paginate<T>(key: Buffer, q: PageQuery<T>): Page<T> {
  const after = q.req.pageToken ? decodeToken(key, q.list, q.filters, q.req.pageToken) : undefined;
  const size = pageSizeOf(q.req);
  const keyed: Array<[string, T]> = [];
  for (const item of q.items) {
    const k = q.sortKey(item);
    if (after === undefined || k > after) keyed.push([k, item]);
  }
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const page: Array<[string, T]> = [];
  let bytes = 0;
  const maxBytes = q.maxBytes ?? PAGE_BYTES;
  for (const entry of keyed) {
    if (page.length === size) break;
    bytes += q.sizeOf(entry[1]);
    if (page.length > 0 && bytes > maxBytes) break;
    page.push(entry);
  }
  const last = page[page.length - 1];
  const more = keyed.length > page.length && last !== undefined;
  return {
    items: page.map(([, item]) => item),
    nextPageToken: more ? encodeToken(key, { l: q.list, f: filtersHash(q.filters), k: last[0] }) : '',
  };
}

/** A sort key that orders by creation time, then id: zero-padded so string order is time order. */
export function timeKey(createdAtMs: number, id: string): string {
  return `${Math.max(0, Math.trunc(createdAtMs)).toString().padStart(16, '0')}/${id}`;
}
