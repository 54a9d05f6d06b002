/** `muster gang launch|ls|get|stop`: gangs from the shell (their logs: `muster logs`, logs.ts). */
import type { Command } from 'commander';
import { ErrorCode, checkGangSpec, isMusterError, type Gang } from '@muster/sdk';
import { addConnectionFlags, withCluster, type ConnectionFlags } from '../connection.js';
import { ago, table } from '../format.js';
import { readSpecFile } from '../spec-file.js';

type Flags = ConnectionFlags & { json?: boolean };

export function gangCommand(program: Command): void {
  const gang = program.command('gang').description('gangs: the ranks of a TP×PP replica, started and restarted as one');

  addConnectionFlags(gang.command('launch').description('launch a gang on a placement group from a YAML or JSON spec'))
    .requiredOption('-f, --file <file>', 'gang spec (see docs/gangs.md)')
    .option('--wait <seconds>', 'wait until every rank is ready, showing progress', '0')
    .option('--json', 'print JSON')
    .action(async (flags: Flags & { file: string; wait: string }) => {
      const spec = await readSpecFile(flags.file, 'Gang', checkGangSpec);
      await withCluster(flags, async (cluster) => {
        const g = await cluster.gangs.launch(spec);
        process.stderr.write(`launched ${g.id} (${g.name}): ${g.state} — ${g.message}\n`);
        if (Number(flags.wait) > 0) await waitWithProgress(g, Number(flags.wait) * 1000);
        process.stdout.write(flags.json ? `${JSON.stringify(g, null, 2)}\n` : `${describe(g)}\n`);
      });
    });

  addConnectionFlags(gang.command('ls').description('list gangs'))
    .option('--state <state>', 'only this state (pending, starting, ready, restarting, failed, stopping, stopped)')
    .option('--prefix <name-prefix>', 'only names starting with this')
    .option('--json', 'print JSON')
    .action(async (flags: Flags & { state?: string; prefix?: string }) => {
      await withCluster(flags, async (cluster) => {
        // Fetched page by page; the head filters.
        const gangs = await cluster.gangs.list({ ...(flags.state ? { state: flags.state as 'ready' } : {}), ...(flags.prefix ? { namePrefix: flags.prefix } : {}) });
        if (flags.json) return void process.stdout.write(`${JSON.stringify(gangs, null, 2)}\n`);
        if (gangs.length === 0) return void process.stdout.write('no gangs\n');
        process.stdout.write(`${table(['ID', 'NAME', 'STATE', 'RANKS', 'READY', 'ATTEMPT', 'RESTARTS', 'AGE', 'MESSAGE'], gangs.map((g) => {
          const v = g.toJSON();
          return [g.id, g.name, g.state, String(g.ranks.length), String(g.ranks.filter((r) => r.phase === 'ready').length), String(v.attempt), String(v.restarts), ago(v.createdAt), g.message];
        }))}\n`);
      });
    });

  addConnectionFlags(gang.command('get <id>').description('show a gang, its ranks and its failures'))
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Flags) => {
      await withCluster(flags, async (cluster) => {
        const g = await cluster.gangs.get(id);
        process.stdout.write(flags.json ? `${JSON.stringify(g, null, 2)}\n` : `${describe(g)}\n`);
      });
    });

  addConnectionFlags(gang.command('stop <id>').description('stop every rank of a gang'))
    .option('--wait <seconds>', 'wait until every rank is gone', '10')
    .action(async (id: string, flags: Flags & { wait: string }) => {
      await withCluster(flags, async (cluster) => {
        const g = await cluster.gangs.stop(id);
        const deadline = Date.now() + Number(flags.wait) * 1000;
        while (g.state === 'stopping' && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 200));
          await g.refresh();
        }
        process.stdout.write(`${g.name}: ${g.state}\n`);
      });
    });
}


function describe(g: Gang): string {
  const v = g.toJSON();
  const lines = [`${g.id}  ${g.name}  ${g.state}  attempt ${v.attempt}, restarts ${v.restarts}  MASTER ${v.masterAddr}:${v.masterPort}`, `  ${g.message}`];
  if (g.ranks.length) {
    // A gang with roles (docs/gangs.md, "Roles") shows each rank's role and instance.
    const roles = g.ranks.some((r) => r.role);
    lines.push(table(['RANK', ...(roles ? ['ROLE'] : []), 'NODE', 'TP', 'PP', 'LOCAL', 'CUDA_VISIBLE_DEVICES', 'PORTS', 'PHASE', 'PID', 'REASON'], g.ranks.map((r) => [
      String(r.rank), ...(roles ? [`${r.role}#${r.roleIndex}`] : []), r.nodeId, String(r.tpRank), String(r.ppRank), String(r.localRank), r.cudaVisibleDevices || '-',
      Object.entries(r.ports).map(([k, p]) => `${k}=${p}`).join(',') || '-', r.phase, r.pid ? String(r.pid) : '-', r.reason,
    ])));
  }
  const f = v.firstFailure;
  if (f) lines.push(`first failure (attempt ${f.attempt}): rank ${f.rank} on ${f.nodeId}: ${f.reason}${f.exitCode !== undefined ? ` (exit ${f.exitCode})` : ''}`, ...(f.logTail ? [f.logTail.replace(/^/gm, '  | ')] : []));
  return lines.join('\n');
}

/** Waits for READY, printing ranks launched / ready / failed as they change. */
async function waitWithProgress(g: Gang, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      await g.ready({ timeout: Math.min(500, Math.max(0, deadline - Date.now())) });
      process.stderr.write(`${g.name}: all ${g.ranks.length} ranks ready\n`);
      return;
    } catch (e) {
      if (!isMusterError(e) || e.code !== ErrorCode.DEADLINE_EXCEEDED || Date.now() >= deadline) throw e;
      const now = `${g.state}: ${g.message}`;
      if (now !== last) process.stderr.write(`waiting… ${now}\n`);
      last = now;
    }
  }
}
