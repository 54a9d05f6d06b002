/**
 * Hooks the pages share: `useLive` loads a page's data and loads it again
 * when a live event of the kinds it shows arrives (at most every 500 ms, or
 * the interval the page gives), so a
 * page follows the cluster without a reload; `useRoute` reads the hash route
 * ("#/nodes/n1" → ["nodes", "n1"]).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, onEvent } from './api.js';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | Error | undefined;
  reload(): void;
}

/** `everyMs`: the least time between two reloads caused by events (a costly answer takes a larger one). */
export function useLive<T>(load: () => Promise<T>, kinds: readonly string[], deps: readonly unknown[], everyMs = 500): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const pending = useRef<number | undefined>(undefined);
  useEffect(() => {
    let live = true;
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
      if (!live || !kinds.some((k) => e.kind.startsWith(k)) || pending.current !== undefined) return;
      pending.current = window.setTimeout(() => {
        pending.current = undefined;
        setTick((t) => t + 1);
      }, everyMs);
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
