/**
 * Hooks the pages share: `useLive` loads a page's data and loads it again
 * when a live event of the kinds it shows arrives (at most every 500 ms, or
 * the interval the page gives), so a
 * page follows the cluster without a reload; `useRoute` reads the hash route
 * ("#/nodes/n1" → ["nodes", "n1"]).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, liveWithin, onEvent } from './api.js';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | Error | undefined;
  reload(): void;
}

/**
 * How old a walk the head shares between askers may be (routes.ts's
 * OVERVIEW_MAX_AGE_MS): the overview, the node list and the node page are
 * answered from walks up to this old.
 */
export const SHARED_WALK_MS = 2_000;

/**
 * `everyMs`: the least time between two reloads caused by events (a costly
 * answer takes a larger one). A page answered from the head's shared walks
 * gives at least SHARED_WALK_MS: then a reload an event caused is never
 * answered from a walk made before that event, and a load that may have
 * been (an event of its kinds arrived within SHARED_WALK_MS before it) is
 * followed by one more reload.
 */
export function useLive<T>(load: () => Promise<T>, kinds: readonly string[], deps: readonly unknown[], everyMs = 500): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const pending = useRef<number | undefined>(undefined);
  const reloadSoon = () => {
    if (pending.current !== undefined) return;
    pending.current = window.setTimeout(() => {
      pending.current = undefined;
      setTick((t) => t + 1);
    }, everyMs);
  };
  useEffect(() => {
    let live = true;
    if (everyMs >= SHARED_WALK_MS && liveWithin(kinds, SHARED_WALK_MS)) reloadSoon();
    load().then(
      (d) => live && (setData(d), setError(undefined)),
      (e: Error) => live && setError(e),
    );
    return () => void (live = false);
  }, [...deps, tick]);
  useEffect(() => {
    if (kinds.length === 0) return undefined;
    const off = onEvent((e, live) => {
      // Replayed events happened before the page loaded what it shows.
      if (live && kinds.some((k) => e.kind.startsWith(k))) reloadSoon();
    });
    return () => {
      off();
      if (pending.current !== undefined) window.clearTimeout(pending.current);
      pending.current = undefined;
    };
  }, deps);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

const parts = () => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);

export function useRoute(): string[] {
  const [route, setRoute] = useState(parts);
  useEffect(() => {
    const on = () => setRoute(parts());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

export const href = (...p: string[]) => `#/${p.map(encodeURIComponent).join('/')}`;
