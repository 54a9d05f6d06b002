/**
 * Cluster overview: nodes by state, GPUs used/free, the per-zone/rack table
 * and the latest events (live, from the event stream).
 */
import { useEffect, useState } from 'preact/hooks';
import { get, onEvent, recentEvents, type ClusterEvent } from '../api.js';
import { useLive } from '../live.js';
import { Failure, time } from '../ui.js';

interface Summary {
  nodesAlive?: number;
  nodesDead?: number;
  nodesDraining?: number;
  gpusTotal?: number;
  gpusUsed?: number;
  gpusFree?: number;
  placementGroups?: Record<string, number>;
  gangs?: Record<string, number>;
  replicaGroups?: number;
  replicaGroupsQuarantined?: number;
}
interface Domain {
  zone: string;
  rack: string;
  alive: number;
  dead: number;
  draining: number;
  gpusTotal: number;
  gpusUsed: number;
}

const KINDS = ['node.', 'pg.', 'gang.', 'rg.'];

export function Overview() {
  const cluster = useLive(() => get<{ headId: string; store: string; version: string; summary?: Summary }>('/cluster'), KINDS, [], 1_000);
  // The zone/rack table walks every node on the head: at most every 5 s on a busy cluster.
  const overview = useLive(() => get<{ domains: Domain[] }>('/overview'), ['node.', 'pg.'], [], 5_000);
  const s = cluster.data?.summary ?? {};
  return (
    <>
      <h1>Cluster</h1>
      <Failure error={cluster.error ?? overview.error} />
      <section class="cards" data-testid="summary">
        <Card label="nodes alive" value={s.nodesAlive ?? 0} testid="nodes-alive" />
        <Card label="nodes dead" value={s.nodesDead ?? 0} tone={s.nodesDead ? 'bad' : ''} />
        <Card label="draining" value={s.nodesDraining ?? 0} />
        <Card label="GPUs used" value={`${s.gpusUsed ?? 0} / ${s.gpusTotal ?? 0}`} testid="gpus" />
        <Card label="GPUs free" value={s.gpusFree ?? 0} />
        <Card label="placement groups" value={Object.values(s.placementGroups ?? {}).reduce((a, b) => a + b, 0)} />
        <Card label="gangs" value={Object.values(s.gangs ?? {}).reduce((a, b) => a + b, 0)} />
        <Card label={s.replicaGroupsQuarantined ? `replica groups, ${s.replicaGroupsQuarantined} quarantined` : 'replica groups'} value={s.replicaGroups ?? 0} tone={s.replicaGroupsQuarantined ? 'bad' : ''} />
      </section>
      <p class="muted">head {cluster.data?.headId} · {cluster.data?.store} store · {cluster.data?.version}</p>
      <div class="columns">
        <section>
          <h2>By zone and rack</h2>
          <table data-testid="domains">
            <thead><tr><th>zone</th><th>rack</th><th>alive</th><th>dead</th><th>draining</th><th>GPUs used / total</th></tr></thead>
            <tbody>
              {(overview.data?.domains ?? []).map((d) => (
                <tr>
                  <td>{d.zone || '—'}</td><td>{d.rack || '—'}</td><td>{d.alive}</td><td>{d.dead}</td><td>{d.draining}</td>
                  <td><Bar used={d.gpusUsed} total={d.gpusTotal} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section>
          <h2>Recent events</h2>
          <Events />
        </section>
      </div>
    </>
  );
}

function Card(props: { label: string; value: number | string; tone?: string; testid?: string }) {
  return <div class={`card ${props.tone ?? ''}`} data-testid={props.testid}><div class="value">{props.value}</div><div class="muted">{props.label}</div></div>;
}

export function Bar(props: { used: number; total: number }) {
  const pct = props.total ? (100 * props.used) / props.total : 0;
  return (
    <span class="bar" title={`${props.used} of ${props.total}`}>
      <span style={{ width: `${pct}%` }} />
      <em>{props.used} / {props.total}</em>
    </span>
  );
}

/** The latest events, newest first, as they arrive (give a `key` per filter: the filter is read when mounted). */
export function Events(props: { filter?: (e: ClusterEvent) => boolean; max?: number }) {
  const pick = () => recentEvents.filter(props.filter ?? (() => true)).slice(-(props.max ?? 25)).reverse();
  const [events, setEvents] = useState(pick);
  // Once per frame at most: a replay of thousands of events renders the list once, not thousands of times.
  useEffect(() => {
    let frame: number | undefined;
    const off = onEvent(() => {
      frame ??= requestAnimationFrame(() => {
        frame = undefined;
        setEvents(pick());
      });
    });
    return () => {
      off();
      if (frame !== undefined) cancelAnimationFrame(frame);
    };
  }, []);
  return (
    <ul class="events" data-testid="events">
      {events.map((e) => (
        <li key={e.id} data-kind={e.kind}>
          <span class="muted">{time(e.timeMs)}</span> <code>{e.kind}</code> {e.nodeId && <a href={`#/nodes/${encodeURIComponent(e.nodeId)}`}>{e.nodeId}</a>} {e.message}
        </li>
      ))}
      {events.length === 0 && <li class="muted">no events yet</li>}
    </ul>
  );
}
