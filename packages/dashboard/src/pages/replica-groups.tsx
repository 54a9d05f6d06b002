/**
 * Replica groups: the paged list, and one group's page — its replicas with
 * revision, state and load (in flight + queued, from the head's last load
 * report), the revisions and canary weight, what the autoscaler sees now, and
 * a chart over time of desired and ready replicas, load, and the
 * autoscaler's decisions. The chart's history is the group's retained
 * `rg.created` / `rg.scaled` / `rg.autoscale` events (replayed from the
 * event stream: the replica count each one set, the autoscaler's as
 * points), and, while the page is open, a sample of the group every 2 s
 * (desired, ready, in flight + queued).
 */
import { useEffect, useState } from 'preact/hooks';
import { get, onEvent, recentEvents, type ClusterEvent, type ReplicaGroupJson } from '../api.js';
import { href, useLive } from '../live.js';
import { Failure, State, usePaged } from '../ui.js';
import { Events } from './overview.js';
import { TimeChart } from './chart.js';

export function ReplicaGroupList() {
  const { items, error, pager } = usePaged(
    (pageToken) => get<{ groups?: ReplicaGroupJson[]; nextPageToken?: string }>('/replica-groups', { pageToken }).then((r) => ({ items: r.groups ?? [], next: r.nextPageToken })),
    ['rg.'],
    [],
  );
  return (
    <>
      <h1>Replica groups</h1>
      <Failure error={error} />
      <table data-testid="replica-groups">
        <thead><tr><th>name</th><th>replicas (ready / desired)</th><th>revision</th><th>rollout</th><th>message</th></tr></thead>
        <tbody>
          {items.map((g) => (
            <tr key={g.name}>
              <td><a href={href('replica-groups', g.name)}>{g.name}</a></td>
              <td>{(g.replicas ?? []).filter((r) => r.state === 'ready').length} / {g.desired ?? 0}</td>
              <td><code>{g.revision}</code>{g.stableRevision && g.stableRevision !== g.revision ? <> (stable <code>{g.stableRevision}</code>)</> : null}</td>
              <td>{g.spec?.rollout?.strategy || 'rolling'}{g.spec?.rollout?.strategy === 'canary' ? ` ${Math.round((g.spec.rollout.canaryWeight ?? 0) * 100)}%` : ''}</td>
              <td class="muted">{g.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {pager}
    </>
  );
}

interface Sample {
  t: number;
  desired: number | null;
  ready: number | null;
  load: number | null;
  decision: number | null;
}

const MAX_SAMPLES = 3_600;
const COUNT_KINDS = new Set(['rg.created', 'rg.scaled', 'rg.autoscale']);
const isDecision = (name: string) => (e: ClusterEvent) => COUNT_KINDS.has(e.kind) && e.attributes?.group === name;
/** The replica count an event set: `to` of an autoscaler decision, else the count in its message. */
const decisionValue = (e: ClusterEvent) => Number(e.attributes?.to ?? /(?:scaled to|created with) (\d+)/.exec(e.message ?? '')?.[1] ?? NaN);

export function ReplicaGroupPage(props: { name: string }) {
  const { data: g, error } = useLive(() => get<ReplicaGroupJson>(`/replica-groups/${encodeURIComponent(props.name)}`), ['rg.', 'gang.'], [props.name]);
  const [samples, setSamples] = useState<Sample[]>([]);
  // History: the group's decisions among the events seen (retained ones are replayed first), then each new one.
  useEffect(() => {
    const fromEvent = (e: ClusterEvent): Sample => {
      const n = decisionValue(e);
      return { t: (e.timeMs ?? Date.now()) / 1000, desired: Number.isFinite(n) ? n : null, ready: null, load: null, decision: e.kind === 'rg.autoscale' ? n : null };
    };
    setSamples(recentEvents.filter(isDecision(props.name)).map(fromEvent));
    return onEvent((e) => {
      if (isDecision(props.name)(e)) setSamples((s) => [...s, fromEvent(e)].slice(-MAX_SAMPLES));
    });
  }, [props.name]);
  // Live: a sample of the group every 2 s while the page is open.
  useEffect(() => {
    const sample = () =>
      get<ReplicaGroupJson>(`/replica-groups/${encodeURIComponent(props.name)}`).then((rg) => {
        const reps = rg.replicas ?? [];
        const load = reps.reduce((a, r) => a + (r.load?.inFlight ?? 0) + (r.load?.queued ?? 0), 0);
        setSamples((s) => [...s, { t: Date.now() / 1000, desired: rg.desired ?? 0, ready: reps.filter((r) => r.state === 'ready').length, load, decision: null }].slice(-MAX_SAMPLES));
      }, () => undefined);
    void sample();
    const timer = window.setInterval(() => void sample(), 2_000);
    return () => window.clearInterval(timer);
  }, [props.name]);
  const sorted = [...samples].sort((a, b) => a.t - b.t);
  const view = g?.autoscalerView;
  return (
    <>
      <h1>Replica group {props.name}</h1>
      <Failure error={error} />
      {g && (
        <>
          <p>
            desired {g.desired ?? 0} · TP {g.spec?.tp ?? 1} × PP {g.spec?.pp ?? 1} · revision <code>{g.revision}</code>
            {g.stableRevision && g.stableRevision !== g.revision && <> · stable <code>{g.stableRevision}</code></>}
            {g.spec?.rollout?.strategy === 'canary' && <> · canary weight <strong data-testid="canary">{Math.round((g.spec.rollout.canaryWeight ?? 0) * 100)}%</strong></>}
            <br />
            <span class="muted">{g.message}</span>
          </p>
          {view && <p class="reason">autoscaler ({view.metric}): {view.value ?? 0} ({view.perReplica ?? 0} per replica, target {view.target ?? 0}) → wants {view.desired ?? 0}: {view.reason}</p>}
          <TimeChart
            testid="rg-chart"
            x={sorted.map((s) => s.t)}
            series={[
              { label: 'desired', stroke: '#1f5fa8', values: sorted.map((s) => s.desired) },
              { label: 'ready', stroke: '#1f7a3a', values: sorted.map((s) => s.ready) },
              { label: 'load', stroke: '#d9822b', values: sorted.map((s) => s.load), right: true },
              { label: 'autoscaler decision', stroke: '#c0392b', values: sorted.map((s) => s.decision), points: true },
            ]}
          />
          <table data-testid="replicas">
            <thead><tr><th>replica</th><th>revision</th><th>state</th><th>in flight</th><th>queued</th><th>gang</th><th>message</th></tr></thead>
            <tbody>
              {(g.replicas ?? []).map((r) => (
                <tr>
                  <td>{r.id}</td>
                  <td><code>{r.revision}</code></td>
                  <td><State value={r.state} prefix="" /></td>
                  <td>{r.load?.inFlight ?? '—'}</td>
                  <td>{r.load?.queued ?? '—'}</td>
                  <td>{r.gangId ? <a href={href('gangs', r.gangId)}>{r.gangId}</a> : '—'}</td>
                  <td class="muted">{r.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Events</h2>
          <Events key={props.name} filter={(e) => e.attributes?.group === props.name} />
        </>
      )}
    </>
  );
}
