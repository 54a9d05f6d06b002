/**
 * Placement groups: state, strategy, bundles → node and GPUs, and for a
 * group that waits (PENDING, RESCHEDULING, INFEASIBLE) the scheduler's
 * reason with its rejection counts.
 */
import { useState } from 'preact/hooks';
import { get, type PgJson } from '../api.js';
import { href } from '../live.js';
import { Failure, State, time, usePaged } from '../ui.js';

export function PlacementGroups() {
  const [prefix, setPrefix] = useState('');
  const [state, setState] = useState('');
  const { items, error, pager } = usePaged(
    (pageToken) => get<{ groups?: PgJson[]; nextPageToken?: string }>('/placement-groups', { pageToken, prefix, state }).then((r) => ({ items: r.groups ?? [], next: r.nextPageToken })),
    ['pg.'],
    [prefix, state],
  );
  return (
    <>
      <h1>Placement groups</h1>
      <div class="filters">
        <input placeholder="name prefix" value={prefix} onInput={(e) => setPrefix((e.target as HTMLInputElement).value)} />
        <select value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value)}>
          <option value="">any state (not removed)</option>
          {['pending', 'reserved', 'created', 'rescheduling', 'infeasible'].map((s) => <option value={s}>{s}</option>)}
        </select>
      </div>
      <Failure error={error} />
      <table data-testid="placement-groups">
        <thead><tr><th>name</th><th>state</th><th>strategy</th><th>bundles → placement</th><th>created</th></tr></thead>
        <tbody>
          {items.map((pg) => (
            <tr key={pg.id} data-testid={`pg-${pg.spec?.name ?? pg.id}`}>
              <td>{pg.spec?.name || pg.id}<div class="muted small">{pg.id}</div></td>
              <td><State value={pg.state} /></td>
              <td>{pg.spec?.strategy || 'PACK'}</td>
              <td>
                {(pg.spec?.bundles ?? []).map((b, i) => {
                  const p = pg.placements?.find((x) => (x.bundleIndex ?? 0) === i);
                  return (
                    <div>
                      #{i}: {b.gpus ?? 0} {b.migProfile ? `× ${b.migProfile}` : 'GPU'} → {p ? <><a href={href('nodes', p.nodeId ?? '')}>{p.nodeId}</a> GPUs [{(p.gpuIndices ?? []).join(', ')}]{p.migUuids?.length ? ` MIG ${p.migUuids.length}` : ''}</> : <span class="muted">not placed</span>}
                    </div>
                  );
                })}
                {pg.reason && (
                  <div class="reason" data-testid="pending-reason">
                    <code>{pg.reason.code}</code> {pg.reason.message}
                    {(pg.reason.rejections ?? []).map((r) => <div class="muted small">{r.count} × {r.code}{r.detail ? `: ${r.detail}` : ''}</div>)}
                  </div>
                )}
              </td>
              <td class="muted">{time(pg.createdAtMs)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {pager}
    </>
  );
}
