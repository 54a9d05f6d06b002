/** `muster pg create|ls|get|why|rm`: placement groups from the shell. */
import type { Command } from 'commander';
import { ErrorCode, checkPlacementGroupSpec, isMusterError, type PlacementGroup } from '@muster/sdk';
import { addConnectionFlags, withCluster, type ConnectionFlags } from '../connection.js';
import { ago, table } from '../format.js';
import { readSpecFile } from '../spec-file.js';

type Flags = ConnectionFlags & { json?: boolean };

export function pgCommand(program: Command): void {
  const pg = program.command('pg').description('placement groups: gangs of bundles reserved all or nothing');

  addConnectionFlags(pg.command('create').description('create a placement group from a YAML or JSON spec'))
    .requiredOption('-f, --file <file>', 'spec file (YAML or JSON; see docs/scheduler.md)')
    .option('--wait <seconds>', 'wait until it is created, showing what it waits on', '0')
    .option('--json', 'print JSON')
    .action(async (flags: Flags & { file: string; wait: string }) => {
      const spec = await readSpecFile(flags.file, 'PlacementGroup', checkPlacementGroupSpec);
      await withCluster(flags, async (cluster) => {
        const group = await cluster.placementGroups.create(spec);
        process.stderr.write(`created ${group.id} (${group.name}): ${group.state}\n`);
        const waitS = Number(flags.wait);
        if (waitS > 0) await waitWithProgress(group, waitS * 1000);
        print(flags, group, () => describe(group));
      });
    });

  addConnectionFlags(pg.command('ls').description('list placement groups'))
    .option('--state <state>', 'only this state (pending, reserved, created, rescheduling, infeasible, removed)')
    .option('--prefix <name-prefix>', 'only names starting with this')
    .option('--json', 'print JSON')
    .action(async (flags: Flags & { state?: string; prefix?: string }) => {
      await withCluster(flags, async (cluster) => {
        // Fetched page by page; the head filters.
        const groups = await cluster.placementGroups.list({ ...(flags.state ? { state: flags.state as 'pending' } : {}), ...(flags.prefix ? { namePrefix: flags.prefix } : {}) });
        if (flags.json) return void process.stdout.write(`${JSON.stringify(groups, null, 2)}\n`);
        if (groups.length === 0) return void process.stdout.write('no placement groups\n');
        process.stdout.write(`${table(['ID', 'NAME', 'STATE', 'BUNDLES', 'GPUS', 'NODES', 'AGE', 'REASON'], groups.map((g) => {
          const v = g.toJSON();
          const gpus = v.spec.bundles.reduce((s, b) => s + b.gpus, 0);
          return [g.id, g.name, g.state, String(v.spec.bundles.length), String(gpus), [...new Set(g.placements.map((p) => p.nodeId))].join(',') || '-', ago(v.createdAt), g.reason?.message ?? ''];
        }))}\n`);
      });
    });

  addConnectionFlags(pg.command('get <id>').description('show a placement group and where its bundles are'))
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Flags) => {
      await withCluster(flags, async (cluster) => {
        const group = await cluster.placementGroups.get(id);
        print(flags, group, () => describe(group));
      });
    });

  addConnectionFlags(pg.command('why <id>').description('explain why a placement group is (still) pending'))
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Flags) => {
      await withCluster(flags, async (cluster) => {
        const group = await cluster.placementGroups.get(id);
        const r = group.reason;
        if (flags.json) return void process.stdout.write(`${JSON.stringify({ id: group.id, state: group.state, reason: r ?? null }, null, 2)}\n`);
        if (!r) return void process.stdout.write(`${group.name} is ${group.state}: nothing is holding it back\n`);
        const lines = [`${group.name} is ${group.state}: ${r.message}`];
        if (r.rejections.length) {
          lines.push(`nodes rejected (${r.nodesTotal} in the cluster):`);
          for (const x of r.rejections) lines.push(`  ${String(x.count).padStart(4)}  ${x.code}${x.detail ? ` (${x.detail})` : ''}`);
        }
        if (r.largestFreeIsland) lines.push(`largest free NVLink island: ${r.largestFreeIsland.size} GPUs on ${r.largestFreeIsland.nodeId}`);
        if (r.mostFreeGpus) lines.push(`most free GPUs on one node: ${r.mostFreeGpus.count} on ${r.mostFreeGpus.nodeId}`);
        process.stdout.write(`${lines.join('\n')}\n`);
      });
    });

  addConnectionFlags(pg.command('rm <id>').description('remove a placement group (frees its bundles)'))
    .action(async (id: string, flags: Flags) => {
      await withCluster(flags, async (cluster) => {
        const group = await cluster.placementGroups.remove(id);
        process.stdout.write(`removed ${group.id} (${group.name})\n`);
      });
    });
}


function print(flags: Flags, group: PlacementGroup, human: () => string): void {
  process.stdout.write(flags.json ? `${JSON.stringify(group, null, 2)}\n` : `${human()}\n`);
}

function describe(g: PlacementGroup): string {
  const v = g.toJSON();
  const lines = [`${g.id}  ${g.name}  ${g.state}  (strategy ${v.spec.strategy}, priority ${v.spec.priority}, reschedules ${v.reschedules})`];
  if (g.reason) lines.push(`reason: ${g.reason.message}`);
  if (g.placements.length) {
    lines.push(table(['BUNDLE', 'NODE', 'GPUS', 'GPU UUIDS', 'MIG', 'CPU (m)', 'MEMORY'], g.placements.map((p) => [
      String(p.bundleIndex), p.nodeId, p.gpuIndices.join(',') || '-', p.gpuUuids.filter(Boolean).join(',') || '-', p.migUuids.join(',') || '-', String(p.cpuMillis), String(p.memoryBytes),
    ])));
  }
  return lines.join('\n');
}

/** Waits for CREATED, printing the state and reason whenever they change. */
async function waitWithProgress(group: PlacementGroup, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      await group.ready({ timeout: Math.min(1_000, Math.max(0, deadline - Date.now())) });
      process.stderr.write(`${group.name}: created\n`);
      return;
    } catch (e) {
      if (!isMusterError(e) || e.code !== ErrorCode.DEADLINE_EXCEEDED || Date.now() >= deadline) throw e;
      const now = `${group.state}: ${group.reason?.message ?? ''}`;
      if (now !== last) process.stderr.write(`waiting… ${now}\n`);
      last = now;
    }
  }
}
