/** `muster apply -f` and `muster rg ls|get|scale|delete`: replica groups from the shell. */
import type { Command } from 'commander';
import { ErrorCode, MusterError, checkReplicaGroupSpec, type ReplicaFilter, type ReplicaGroup, type ReplicaLoadView } from '@muster/sdk';
import { addConnectionFlags, withCluster, type ConnectionFlags } from '../connection.js';
import { ago, table } from '../format.js';
import { readSpecFile } from '../spec-file.js';

type Flags = ConnectionFlags & { json?: boolean };

export function rgCommand(program: Command): void {
  addConnectionFlags(program.command('apply').description('create or update a replica group from a YAML or JSON spec (idempotent)'))
    .requiredOption('-f, --file <file>', 'spec file (see docs/replica-groups.md)')
    .option('--json', 'print JSON')
    .action(async (flags: Flags & { file: string }) => {
      const spec = await readSpecFile(flags.file, 'ReplicaGroup', checkReplicaGroupSpec);
      await withCluster(flags, async (cluster) => {
        const g = await cluster.replicaGroups.apply(spec);
        process.stdout.write(flags.json ? `${JSON.stringify(g, null, 2)}\n` : `replica group ${g.name}: ${g.desired} replica(s), revision ${g.toJSON().revision}\n`);
      });
    });

  const rg = program.command('rg').description('replica groups: N replicas of a TP×PP shard template, routed over NATS');

  addConnectionFlags(rg.command('ls').description('list replica groups'))
    .option('--prefix <name-prefix>', 'only names starting with this')
    .option('--json', 'print JSON')
    .action(async (flags: Flags & { prefix?: string }) => {
      await withCluster(flags, async (cluster) => {
        // Fetched page by page; the head filters.
        const groups = await cluster.replicaGroups.list(flags.prefix ? { namePrefix: flags.prefix } : {});
        if (flags.json) return void process.stdout.write(`${JSON.stringify(groups, null, 2)}\n`);
        if (groups.length === 0) return void process.stdout.write('no replica groups\n');
        process.stdout.write(`${table(['NAME', 'DESIRED', 'READY', 'REVISION', 'MEMBERSHIP', 'STATUS'], groups.map((g) => {
          const v = g.toJSON();
          // The list carries counts, not replicas (docs/replica-groups.md, "Replica pages").
          return [g.name, String(g.desired), String(v.replicasByState.ready ?? 0), v.stableRevision ? `${v.revision} (canary over ${v.stableRevision})` : v.revision, `v${v.membershipVersion}`, v.deleting ? 'deleting' : v.message];
        }))}\n`);
      });
    });

  addConnectionFlags(rg.command('get <name>').description('show a replica group and its replicas (read page by page)'))
    .option('--state <states>', 'only replicas in these states, comma-separated (starting, ready, draining, stopping, failed)')
    .option('--revision <revision>', 'only replicas of this revision')
    .option('--page-size <n>', 'replicas per request to the head (default 1000, at most 1000)')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: Flags & { state?: string; revision?: string; pageSize?: string }) => {
      const filter = replicaFilter(flags);
      await withCluster(flags, async (cluster) => {
        const g = await cluster.replicaGroups.get(name, filter);
        process.stdout.write(flags.json ? `${JSON.stringify(g, null, 2)}\n` : `${describe(g)}\n`);
      });
    });

  addConnectionFlags(rg.command('scale <name> <replicas>').description('set the number of replicas (whole gangs; drained before stop)'))
    .action(async (name: string, replicas: string, flags: Flags) => {
      const count = Number(replicas);
      if (!Number.isInteger(count) || count < 0) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `replicas: expected a whole number, got "${replicas}"`);
      await withCluster(flags, async (cluster) => {
        const g = await cluster.replicaGroups.scale(name, count);
        process.stdout.write(`replica group ${g.name} scaled to ${g.desired}\n`);
      });
    });

  addConnectionFlags(rg.command('events <name>').description("a group's events: scaling decisions with their inputs and reasons, rollouts, replicas"))
    .option('-f, --follow', 'keep printing new events')
    .option('--json', 'print JSON lines')
    .action(async (name: string, flags: Flags & { follow?: boolean }) => {
      await withCluster(flags, async (cluster) => {
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        // Without --follow: stop once the replay has gone quiet.
        let quiet: NodeJS.Timeout | undefined;
        const rearm = () => {
          if (flags.follow) return;
          clearTimeout(quiet);
          quiet = setTimeout(() => abort.abort(), 400);
        };
        rearm();
        for await (const e of cluster.events({ replay: true, kinds: ['rg.'], signal: abort.signal })) {
          rearm();
          if (e.attributes.group !== name) continue;
          process.stdout.write(flags.json ? `${JSON.stringify(e)}\n` : `${e.time.toISOString()}  ${e.kind.padEnd(12)}  ${e.message}\n`);
        }
        clearTimeout(quiet);
      });
    });

  addConnectionFlags(rg.command('delete <name>').description('drain and delete every replica of a group'))
    .action(async (name: string, flags: Flags) => {
      await withCluster(flags, async (cluster) => {
        const g = await cluster.replicaGroups.delete(name);
        process.stdout.write(`replica group ${g.name} is being deleted\n`);
      });
    });
}

/**
 * The group, its autoscaler's view (metric now, target, the count it would
 * choose and why), its overflow rule, and its replicas with their last load report: in flight,
 * queued, and an HTTP replica's engine metrics (waiting/running, KV cache).
 */
export function describe(g: ReplicaGroup, now = Date.now()): string {
  const v = g.toJSON();
  const lines = [`${g.name}  desired ${g.desired}  revision ${v.revision}${v.stableRevision ? ` (canary over ${v.stableRevision})` : ''}  membership v${v.membershipVersion}  ${v.message}`];
  const counts = Object.entries(v.replicasByState).sort(([a], [b]) => (a < b ? -1 : 1)).map(([state, n]) => `${state} ${n}`);
  lines.push(`replicas: ${v.replicaCount}${counts.length ? ` (${counts.join(', ')})` : ''}`);
  const a = v.autoscaler;
  if (a) lines.push(`autoscaler: ${a.metric} ${num(a.perReplica)}/replica (total ${num(a.value)}, target ${num(a.target)}, ${a.samples} report(s)) → desired ${a.desired}: ${a.reason}`);
  const o = v.spec?.overflow;
  if (o?.group) {
    const rules = [...(o.queuePerReplicaAbove !== undefined ? [`more than ${o.queuePerReplicaAbove} call(s) would wait per replica`] : []), ...(o.onBackPressure ? ['a call would get back-pressure'] : [])];
    // Each caller's router decides and counts (muster_overflow_calls_total): the head has no total to show.
    lines.push(`overflow: to ${o.group} when ${rules.join(' or ')}`);
  }
  if (g.replicas.length) {
    lines.push(table(['REPLICA', 'REVISION', 'STATE', 'IN FLIGHT', 'QUEUED', 'ENGINE W/R/KV', 'REPORTED', 'GANG', 'MESSAGE'], g.replicas.map((r) => {
      const l = r.load;
      return [
        r.id, r.revision, r.replaces ? `${r.state} (replaces ${r.replaces})` : r.state,
        l ? String(l.inFlight) : '-', l ? String(l.queued) : '-', l ? engine(l) : '-', l ? `${ago(l.time, now)} ago` : '-',
        r.gangId || '-', r.message,
      ];
    })));
  }
  return lines.join('\n');
}

/** The --state / --revision / --page-size flags of `rg get`, checked. */
export function replicaFilter(flags: { state?: string; revision?: string; pageSize?: string }): ReplicaFilter {
  const filter: ReplicaFilter = {};
  if (flags.state !== undefined) {
    const states = flags.state.split(',').map((x) => x.trim()).filter(Boolean);
    const bad = states.find((x) => !REPLICA_STATES.includes(x));
    if (bad !== undefined || states.length === 0) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `--state: "${bad ?? flags.state}" is not a replica state; use ${REPLICA_STATES.join(', ')}`, { details: { field: 'state' } });
    filter.states = states;
  }
  if (flags.revision !== undefined) filter.revision = flags.revision;
  if (flags.pageSize !== undefined) {
    const n = Number(flags.pageSize);
    if (!Number.isInteger(n) || n < 1 || n > 1000) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `--page-size: expected a whole number from 1 to 1000, got "${flags.pageSize}"`, { details: { field: 'page-size' } });
    filter.pageSize = n;
  }
  return filter;
}

const REPLICA_STATES = ['starting', 'ready', 'draining', 'stopping', 'failed'];

const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));

function engine(l: ReplicaLoadView): string {
  if (l.engineWaiting === undefined && l.engineRunning === undefined && l.engineKvCache === undefined) return '-';
  const part = (x: number | undefined, f: (x: number) => string) => (x === undefined ? '-' : f(x));
  return `${part(l.engineWaiting, num)}/${part(l.engineRunning, num)}/${part(l.engineKvCache, (x) => `${Math.round(x * 100)}%`)}`;
}
