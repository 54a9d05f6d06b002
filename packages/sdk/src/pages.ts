/**
 * Following the head's paged lists (ListNodes, ListPlacementGroups, ListGangs,
 * ListReplicaGroups): each reply carries at most one page (500 items by
 * default, 1,000 at most) and a `next_page_token` while more follow. The SDK's
 * list methods walk every page, so callers keep getting whole arrays, and
 * `pages()` lets a caller take them one page at a time instead.
 */

/** Options every paged list takes. */
export interface PageOptions {
  /** Items per request: 0 or unset = the head's default (500); the head caps it at 1,000. */
  pageSize?: number;
}

/** One request of a paged list: the token of the page to get ("" = the first). */
export type FetchPage<T> = (pageToken: string) => Promise<{ items: T[]; nextPageToken: string }>;

/** Yields page after page until the head says there are no more. */
export async function* pages<T>(fetch: FetchPage<T>): AsyncGenerator<T[]> {
  let token = '';
  for (;;) {
    const page = await fetch(token);
    yield page.items;
    if (!page.nextPageToken) return;
    token = page.nextPageToken;
  }
}

/** Every item of every page, in the list's order. */
export async function collect<T>(fetch: FetchPage<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const page of pages(fetch)) all.push(...page);
  return all;
}
