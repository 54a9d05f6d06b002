/**
 * Small pieces the pages share: an error line (a standby head says where the
 * leader is), a state badge, times, and `usePaged` — a list read a page at a
 * time from the head (its page tokens kept as a stack for "previous"), so a
 * list of 10,000 nodes costs one page of DOM, never the whole list.
 */
import { useState } from 'preact/hooks';
import { ApiError } from './api.js';
import { useLive } from './live.js';

export function Failure(props: { error: Error | undefined }) {
  const e = props.error;
  if (!e) return null;
  const standby = e instanceof ApiError && e.leader;
  return <p class="error" data-testid="error">{standby ? `This head is a standby; the leader is at ${e.leader} (open its dashboard). ` : ''}{e.message}</p>;
}

/** "NODE_STATE_ALIVE" → "ALIVE", coloured by kind. */
export function State(props: { value: string | undefined; prefix?: string }) {
  const v = (props.value ?? '').replace(props.prefix ?? /^[A-Z_]+_STATE_/, '') || 'UNSPECIFIED';
  const tone = /ALIVE|READY|CREATED|RESERVED|ready|RUNNING/.test(v) ? 'ok' : /DEAD|FAILED|INFEASIBLE|failed/.test(v) ? 'bad' : /PENDING|STARTING|RESCHEDULING|RESTARTING|starting|draining/.test(v) ? 'warn' : '';
  return <span class={`state ${tone}`}>{v}</span>;
}

export const time = (ms: number | undefined) => (ms ? new Date(ms).toLocaleTimeString() : '—');

export interface Paged<T> {
  items: T[];
  error: Error | undefined;
  pager: preact.JSX.Element;
}

/**
 * One page of a head list at a time. `load(token)` reads the page after
 * `token`; events of `kinds` reload the current page (`everyMs`: as useLive's).
 */
export function usePaged<T>(load: (pageToken: string) => Promise<{ items: T[]; next: string | undefined }>, kinds: readonly string[], deps: readonly unknown[], everyMs?: number): Paged<T> {
  const [tokens, setTokens] = useState<string[]>(['']);
  const current = tokens[tokens.length - 1]!;
  const { data, error } = useLive(() => load(current), kinds, [current, ...deps], everyMs);
  const pager = (
    <div class="pager">
      <button disabled={tokens.length < 2} onClick={() => setTokens(tokens.slice(0, -1))}>‹ previous</button>
      <span class="muted">page {tokens.length}</span>
      <button disabled={!data?.next} onClick={() => data?.next && setTokens([...tokens, data.next])} data-testid="next-page">next ›</button>
    </div>
  );
  return { items: data?.items ?? [], error, pager };
}
