/**
 * Nodes: the paged list (100 a page, filtered by id prefix and state) and one
 * node's page — its GPUs grouped by NVLink island, each with its MIG slices
 * and the placement group bundle and gang rank that hold it, and the GPU
 * topology matrix drawn as a grid coloured by link kind (NV#, PIX, PXB, PHB,
 * NODE, SYS), as `nvidia-smi topo -m` reports it.
 */
import { useState } from 'preact/hooks';
import { get, type Gpu, type Holder, type NodeJson } from '../api.js';
import { href, SHARED_WALK_MS, useLive } from '../live.js';
import { Failure, State, time, usePaged } from '../ui.js';
import { Bar, Events } from './overview.js';

export function NodeList() {
  const [prefix, setPrefix] = useState('');
  const [state, setState] = useState('');
  const { items, error, pager } = usePaged(
    (pageToken) => get<{ nodes?: NodeJson[]; nextPageToken?: string }>('/nodes', { pageToken, prefix, state }).then((r) => ({ items: r.nodes ?? [], next: r.nextPageToken })),
    ['node.', 'pg.'],
    [prefix, state],
    SHARED_WALK_MS, // its GPUs in use come from the head's shared walk of the placement groups
  );
  return (
    <>
      <h1>Nodes</h1>
      <div class="filters">
        <input placeholder="node id prefix" value={prefix} onInput={(e) => setPrefix((e.target as HTMLInputElement).value)} />
        <select value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value)}>
          <option value="">any state</option>
          <option value="alive">alive</option>
          <option value="dead">dead</option>
        </select>
      </div>
      <Failure error={error} />
      <table data-testid="nodes">
        <thead><tr><th>node</th><th>state</th><th>GPUs used / total</th><th>GPU model</th><th>zone / rack</th><th>address</th></tr></thead>
        <tbody>
          {items.map((n) => (
            <tr key={n.nodeId}>
              <td><a href={href('nodes', n.nodeId)}>{n.nodeId}</a></td>
              <td><State value={n.state} />{n.draining && <span class="state warn">DRAINING</span>}</td>
              <td><Bar used={n.gpusUsed ?? 0} total={n.inventory?.gpus?.length ?? 0} /></td>
              <td>{n.inventory?.gpus?.[0]?.name ?? '—'}</td>
              <td>{n.labels?.['muster.io/zone'] ?? '—'} / {n.labels?.['muster.io/rack'] ?? '—'}</td>
              <td class="muted">{n.address}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {pager}
    </>
  );
}

export function NodePage(props: { id: string }) {
  const { data, error } = useLive(() => get<{ node: NodeJson; holders: Holder[] }>(`/nodes/${encodeURIComponent(props.id)}`), ['node.', 'pg.', 'gang.'], [props.id], 5_000); // walks every group and gang (shared, 2 s)
  const node = data?.node;
  const gpus = node?.inventory?.gpus ?? [];
  const islands = node?.inventory?.topology?.nvlinkIslands?.map((i) => i.gpuIndices ?? []) ?? [];
  const grouped = islands.length ? islands : [gpus.map((g) => g.index ?? 0)];
  return (
    <>
      <h1>Node {props.id}</h1>
      <Failure error={error} />
      {node && (
        <>
          <p>
            <State value={node.state} /> {node.draining && <span class="state warn">DRAINING</span>} <span class="muted">{node.stateReason}</span>
            <br />
            <span class="muted">
              {node.inventory?.hostname} · {node.address} · {node.inventory?.cpuCores} cores · {((node.inventory?.memoryBytes ?? 0) / 2 ** 30).toFixed(0)} GiB ·
              inventory {node.inventory?.source} · last heartbeat {time(node.lastHeartbeatMs)}
              {node.inventory?.nvlinkDomain ? ` · NVLink domain ${node.inventory.nvlinkDomain}` : ''}
            </span>
          </p>
          <p class="labels">{Object.entries(node.labels ?? {}).map(([k, v]) => <code>{k}={v}</code>)}</p>
          <h2>GPUs by NVLink island</h2>
          <div class="islands" data-testid="gpus">
            {grouped.map((island, i) => (
              <div class="island">
                <div class="muted">island {i + 1}</div>
                {island.map((idx) => <GpuCard gpu={gpus.find((g) => (g.index ?? 0) === idx)} index={idx} holders={data.holders.filter((h) => h.gpuIndex === idx)} />)}
              </div>
            ))}
          </div>
          <h2>Topology</h2>
          <Matrix links={node.inventory?.topology?.links ?? []} n={gpus.length} />
          <h2>Events</h2>
          <Events key={props.id} filter={(e) => e.nodeId === props.id} />
        </>
      )}
    </>
  );
}

function GpuCard(props: { gpu: Gpu | undefined; index: number; holders: Holder[] }) {
  const whole = props.holders.find((h) => !h.migUuid);
  return (
    <div class={`gpu ${whole || props.holders.length ? 'held' : 'free'}`} data-testid="gpu">
      <div><strong>GPU {props.index}</strong> <span class="muted">{props.gpu?.name} · {((props.gpu?.memoryMib ?? 0) / 1024).toFixed(0)} GiB</span></div>
      {whole ? <HolderLine h={whole} /> : !props.gpu?.migEnabled && <div class="muted">free</div>}
      {(props.gpu?.mig ?? []).map((m) => {
        const h = props.holders.find((x) => x.migUuid === m.uuid);
        return <div class="mig"><code>{m.profile}</code> {h ? <HolderLine h={h} /> : <span class="muted">free</span>}</div>;
      })}
    </div>
  );
}

function HolderLine(props: { h: Holder }) {
  const { h } = props;
  return (
    <div class="holder">
      <a href={href('placement-groups')}>{h.pgName || h.pg}</a> bundle {h.bundleIndex}
      {h.gang && <> · <a href={href('gangs', h.gang)}>{h.gangName || h.gang}</a> rank {h.rank}</>}
    </div>
  );
}

const LINK_COLOURS: Array<[RegExp, string, string]> = [
  [/^NV\d+/, '#1f7a3a', 'NVLink (NV#)'],
  [/^PIX$/, '#4c8eda', 'PIX: one PCIe switch'],
  [/^PXB$/, '#7aa7e0', 'PXB: several PCIe switches'],
  [/^PHB$/, '#c9a227', 'PHB: through a host bridge'],
  [/^NODE$/, '#d9822b', 'NODE: across host bridges, one NUMA node'],
  [/^SYS$/, '#c0392b', 'SYS: across NUMA nodes (SMP link)'],
];
const colourOf = (l: string) => LINK_COLOURS.find(([re]) => re.test(l))?.[1] ?? '#ddd';

/** The N×N link matrix as a picture: one square per GPU pair, coloured by how they connect. */
function Matrix(props: { links: string[]; n: number }) {
  const { links, n } = props;
  if (n === 0 || links.length !== n * n) return <p class="muted">no topology reported</p>;
  const cell = 34;
  const pad = 28;
  return (
    <div class="matrix">
      <svg width={pad + n * cell} height={pad + n * cell} data-testid="topology" role="img" aria-label="GPU topology matrix">
        {Array.from({ length: n }, (_, i) => (
          <>
            <text x={pad + i * cell + cell / 2} y={18} text-anchor="middle">{i}</text>
            <text x={10} y={pad + i * cell + cell / 2 + 4} text-anchor="middle">{i}</text>
          </>
        ))}
        {links.map((l, k) => {
          const r = Math.floor(k / n);
          const c = k % n;
          return (
            <g>
              <rect x={pad + c * cell} y={pad + r * cell} width={cell - 2} height={cell - 2} fill={r === c ? '#fff' : colourOf(l)} stroke="#999" stroke-width={0.5}><title>GPU {r} ↔ GPU {c}: {l}</title></rect>
              <text x={pad + c * cell + cell / 2 - 1} y={pad + r * cell + cell / 2 + 3} text-anchor="middle" class="cell">{l}</text>
            </g>
          );
        })}
      </svg>
      <ul class="legend">
        {LINK_COLOURS.filter(([re]) => links.some((l) => re.test(l))).map(([, colour, what]) => <li><span style={{ background: colour }} /> {what}</li>)}
      </ul>
    </div>
  );
}
