/**
 * `muster status`: the cluster summary (nodes by state, GPUs used / free,
 * groups and gangs by state), the replica groups (name, ready/desired,
 * revision; the first MAX_GROUPS_SHOWN), then the nodes with the GPUs used
 * and free on each (GPUs held by placement groups, counted from the
 * placement group list when the nodes are listed).
 *
 * The summary is one small reply whatever the cluster's size. Nodes are
 * listed page by page (ListNodes, 500 a request): always with `--nodes`
 * (which also takes server-side filters), and by default only while the
 * cluster is small (SMALL_CLUSTER nodes), so `muster status` on 10,000 nodes
 * answers with the summary at once.
 */
import type { Command } from 'commander';
import type { Cluster, NodeFilter, NodeView, ReplicaGroup } from '@muster/sdk';
import { addConnectionFlags, withCluster, type ConnectionFlags } from '../connection.js';
import { nodesTable, summaryLines, table } from '../format.js';

/** Up to this many nodes, `muster status` lists them without `--nodes`. */
export const SMALL_CLUSTER = 100;
/** Replica groups shown in the groups summary (the rest: `muster rg ls`). */
export const MAX_GROUPS_SHOWN = 50;
/** Beyond this many groups the summary does not list them (one page of ListReplicaGroups). */
const GROUPS_READ_MAX = 500;

interface StatusFlags extends ConnectionFlags {
  json?: boolean;
  nodes?: boolean;
  state?: string;
  label?: string[];
  prefix?: string;
  draining?: boolean;
}

export function statusCommand(program: Command): void {
  addConnectionFlags(program.command('status').description('show the cluster summary (nodes by state, GPUs used/free, groups) and its nodes'))
    .option('--json', 'print JSON (cluster info with its summary, and nodes when listed)')
    .option('--nodes', `list the nodes, page by page, however many (without it: only up to ${SMALL_CLUSTER} nodes)`)
    .option('--state <state>', 'with --nodes: only nodes in this state (alive | dead)')
    .option('--label <key=value...>', 'with --nodes: only nodes with these labels')
    .option('--prefix <id-prefix>', 'with --nodes: only node ids starting with this')
    .option('--draining', 'with --nodes: only draining nodes')
    .action(async (flags: StatusFlags) => {
      const filter = nodeFilter(flags);
      await withCluster(flags, async (cluster) => {
        const info = await cluster.info();
        const summary = info.summary;
        const total = summary ? summary.nodesAlive + summary.nodesDead : info.nodesAlive + info.nodesDead;
        const listNodes = flags.nodes === true || total <= SMALL_CLUSTER;
        if (flags.json) {
          const { nats: _nats, ...publicInfo } = info; // never print NATS credentials
          const nodes = listNodes ? await cluster.nodes(filter) : undefined;
          process.stdout.write(`${JSON.stringify({ cluster: publicInfo, ...(nodes ? { nodes } : {}) }, null, 2)}\n`);
          return;
        }
        process.stdout.write(`head ${info.headId} (v${info.version}, ${info.store} store) at ${cluster.address}\n`);
        if (summary) process.stdout.write(`${summaryLines(summary).join('\n')}\n`);
        // One page's worth is read at most: a cluster of thousands of groups answers with the count (above).
        if ((summary?.replicaGroups ?? 0) <= GROUPS_READ_MAX) {
          const groups = await cluster.replicaGroups.list();
          if (groups.length) process.stdout.write(`\n${groupsTable(groups)}\n`);
        } else process.stdout.write(`\n(${summary!.replicaGroups} replica groups: muster rg ls lists them)\n`);
        if (!listNodes) {
          process.stdout.write(`\n(${total} nodes: pass --nodes to list them, --state / --label / --prefix / --draining to filter)\n`);
          return;
        }
        const used = await gpusUsedByNode(cluster);
        let first = true;
        for await (const page of cluster.nodePages(filter)) {
          if (page.length === 0) continue;
          process.stdout.write(`${first ? '\n' : ''}${pageTable(page, first, used)}\n`);
          first = false;
        }
      });
    });
}

/** A page of the node table; later pages without the header line. */
function pageTable(page: NodeView[], header: boolean, gpusUsed: ReadonlyMap<string, number>): string {
  const t = nodesTable(page, gpusUsed);
  return header ? t : t.split('\n').slice(1).join('\n');
}

/** GPUs held by placement groups (any state but removed), by node id. */
async function gpusUsedByNode(cluster: Cluster): Promise<Map<string, number>> {
  const used = new Map<string, number>();
  for await (const page of cluster.placementGroups.pages()) {
    for (const pg of page) {
      if (pg.state === 'removed') continue;
      for (const p of pg.placements) used.set(p.nodeId, (used.get(p.nodeId) ?? 0) + p.gpuIndices.length);
    }
  }
  return used;
}

/** NAME, READY/DESIRED, REVISION of the first MAX_GROUPS_SHOWN groups, and how many more there are. */
function groupsTable(groups: ReplicaGroup[]): string {
  const shown = groups.slice(0, MAX_GROUPS_SHOWN);
  const t = table(['GROUP', 'READY/DESIRED', 'REVISION', 'STATUS'], shown.map((g) => {
    const v = g.toJSON();
    const ready = v.replicasByState.ready ?? 0;
    return [g.name, `${ready}/${g.desired}`, v.stableRevision ? `${v.revision} (canary over ${v.stableRevision})` : v.revision, v.deleting ? 'deleting' : v.message || '-'];
  }));
  return groups.length > MAX_GROUPS_SHOWN ? `${t}\n(more groups: muster rg ls)` : t;
}

function nodeFilter(flags: StatusFlags): NodeFilter {
  const filter: NodeFilter = {};
  if (flags.state !== undefined) {
    if (flags.state !== 'alive' && flags.state !== 'dead') throw new Error(`--state must be alive or dead, not "${flags.state}"`);
    filter.state = flags.state;
  }
  if (flags.label) {
    filter.labels = {};
    for (const kv of flags.label) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error(`--label takes key=value, not "${kv}"`);
      filter.labels[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
  }
  if (flags.prefix !== undefined) filter.idPrefix = flags.prefix;
  if (flags.draining) filter.draining = true;
  return filter;
}
