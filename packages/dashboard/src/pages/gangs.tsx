/**
 * Gangs: the paged list, and one gang's page — its ranks with node, GPUs
 * (CUDA_VISIBLE_DEVICES), phase, pid and exit; restarts; the first and last
 * failure; and a log view that streams the chosen rank's log (its last
 * 64 KiB, then as it is written) until the page is left.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, streamLog, type FailureJson, type GangJson } from '../api.js';
import { href, useLive } from '../live.js';
import { Failure, State, time, usePaged } from '../ui.js';

export function GangList() {
  const [prefix, setPrefix] = useState('');
  const { items, error, pager } = usePaged(
    (pageToken) => get<{ gangs?: GangJson[]; nextPageToken?: string }>('/gangs', { pageToken, prefix }).then((r) => ({ items: r.gangs ?? [], next: r.nextPageToken })),
    ['gang.'],
    [prefix],
  );
  return (
    <>
      <h1>Gangs</h1>
      <div class="filters"><input placeholder="name prefix" value={prefix} onInput={(e) => setPrefix((e.target as HTMLInputElement).value)} /></div>
      <Failure error={error} />
      <table data-testid="gangs">
        <thead><tr><th>name</th><th>state</th><th>ranks</th><th>restarts</th><th>first failure</th></tr></thead>
        <tbody>
          {items.map((g) => (
            <tr key={g.id}>
              <td><a href={href('gangs', g.id)}>{g.spec?.name || g.id}</a></td>
              <td><State value={g.state} /></td>
              <td>{g.ranks?.length ?? 0}</td>
              <td>{g.restarts ?? 0}</td>
              <td class="muted">{g.firstFailure ? failureText(g.firstFailure) : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {pager}
    </>
  );
}

const failureText = (f: FailureJson) => `attempt ${f.attempt ?? 0}, rank ${f.rank ?? 0} on ${f.nodeId ?? '?'}: ${f.reason ?? ''}${f.exitCode !== undefined ? ` (exit ${f.exitCode})` : ''} at ${time(f.timeMs)}`;

export function GangPage(props: { id: string }) {
  const { data: g, error } = useLive(() => get<GangJson>(`/gangs/${encodeURIComponent(props.id)}`), ['gang.'], [props.id]);
  const [rank, setRank] = useState<number | undefined>(undefined);
  return (
    <>
      <h1>Gang {g?.spec?.name ?? props.id}</h1>
      <Failure error={error} />
      {g && (
        <>
          <p>
            <State value={g.state} /> attempt {g.attempt ?? 0} · {g.restarts ?? 0} restarts · placement group <code>{g.placementGroupId}</code>
            <br />
            <span class="muted">{g.message}</span>
          </p>
          {g.firstFailure && <p class="reason">first failure: {failureText(g.firstFailure)}</p>}
          {g.lastFailure && g.lastFailure.timeMs !== g.firstFailure?.timeMs && <p class="reason">last failure: {failureText(g.lastFailure)}</p>}
          <table data-testid="ranks">
            <thead><tr><th>rank</th><th>node</th><th>GPUs</th><th>phase</th><th>pid</th><th>exit</th><th>log</th></tr></thead>
            <tbody>
              {(g.ranks ?? []).map((r) => (
                <tr>
                  <td>{r.rank ?? 0}</td>
                  <td><a href={href('nodes', r.nodeId ?? '')}>{r.nodeId}</a></td>
                  <td><code>{r.cudaVisibleDevices || '—'}</code></td>
                  <td><State value={r.phase} prefix="" /></td>
                  <td>{r.pid ?? '—'}</td>
                  <td>{r.exitCode ?? '—'} <span class="muted">{r.reason}</span></td>
                  <td><button onClick={() => setRank(r.rank ?? 0)} data-testid={`log-${r.rank ?? 0}`}>stream log</button></td>
                </tr>
              ))}
            </tbody>
          </table>
          {rank !== undefined && <LogView gang={g.id} rank={rank} />}
        </>
      )}
    </>
  );
}

const MAX_LOG_CHARS = 512 * 1024;

function LogView(props: { gang: string; rank: number }) {
  const [text, setText] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const box = useRef<HTMLPreElement>(null);
  useEffect(() => {
    setText('');
    setError(undefined);
    return streamLog(props.gang, props.rank, (t) => setText((old) => (old + t).slice(-MAX_LOG_CHARS)), setError);
  }, [props.gang, props.rank]);
  useEffect(() => {
    if (box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [text]);
  return (
    <section>
      <h2>Log of rank {props.rank}</h2>
      {error && <p class="error">{error}</p>}
      <pre class="log" ref={box} data-testid="log">{text}</pre>
    </section>
  );
}
