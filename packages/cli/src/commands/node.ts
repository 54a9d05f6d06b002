/**
 * `muster node drain|uncordon|drain-status|rm`: take a node out of service and
 * back. Draining keeps the node alive; the head moves its work elsewhere
 * (replicas make-before-break) and `--wait` follows that until nothing is
 * left there, printing what still runs and what it waits on. `rm` forgets a
 * dead node now instead of after the head's dead-node TTL.
 */
import type { Command } from 'commander';
import { ErrorCode, MusterError, type Cluster, type DrainStatusView } from '@muster/sdk';
import { addConnectionFlags, withCluster, type ConnectionFlags } from '../connection.js';

type Flags = ConnectionFlags & { json?: boolean };

export function nodeCommand(program: Command): void {
  const node = program.command('node').description('nodes: drain (no new placements, move what runs there), uncordon, rm (forget a dead node)');

  addConnectionFlags(node.command('drain <id>').description('drain a node: no new placements; its replicas and gangs move elsewhere when there is room'))
    .option('--reason <text>', 'why (shown by `muster status` and in the node.draining event)', '')
    .option('--wait [seconds]', 'wait until nothing is placed or running there, printing what it waits on (no number: no limit)')
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Flags & { reason: string; wait?: string | true }) => {
      const waitMs = flags.wait === undefined ? 0 : flags.wait === true ? Infinity : Number(flags.wait) * 1000;
      if (Number.isNaN(waitMs) || waitMs < 0) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `--wait: "${flags.wait}" is not a number of seconds`);
      await withCluster(flags, async (cluster) => {
        const n = await cluster.drainNode(id, { reason: flags.reason });
        process.stderr.write(`node ${n.id} draining${n.drainReason ? ` (${n.drainReason})` : ''}: no new placements\n`);
        const status = waitMs > 0 ? await waitDrained(cluster, id, waitMs) : await cluster.drainStatus(id);
        if (flags.json) return void process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        process.stdout.write(`${describe(status)}\n`);
      });
    });

  addConnectionFlags(node.command('uncordon <id>').description('make a draining node take new placements again'))
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Flags) => {
      await withCluster(flags, async (cluster) => {
        const n = await cluster.uncordonNode(id);
        if (flags.json) return void process.stdout.write(`${JSON.stringify(n, null, 2)}\n`);
        process.stdout.write(`node ${n.id} uncordoned: it takes new placements again\n`);
      });
    });

  addConnectionFlags(node.command('rm <id>').description('forget a DEAD node now (a live node is refused; the head forgets dead nodes itself after --dead-node-ttl-ms)'))
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Flags) => {
      await withCluster(flags, async (cluster) => {
        const n = await cluster.removeNode(id);
        if (flags.json) return void process.stdout.write(`${JSON.stringify(n, null, 2)}\n`);
        process.stdout.write(`node ${n.id} removed\n`);
      });
    });

  addConnectionFlags(node.command('drain-status <id>').description('what is still on a node and what moving it waits on'))
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Flags) => {
      await withCluster(flags, async (cluster) => {
        const status = await cluster.drainStatus(id);
        process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : `${describe(status)}\n`);
      });
    });
}

/** "node-2 drained" or the list of what is left, one line each. */
function describe(s: DrainStatusView): string {
  if (s.drained) return `${s.node.id} drained: nothing placed or running there`;
  const head = s.node.draining ? `${s.node.id} draining: ${s.remaining.length} left` : `${s.node.id} is not draining; ${s.remaining.length} placed there`;
  return [head, ...s.remaining.map(item)].join('\n');
}

function item(r: DrainStatusView['remaining'][number]): string {
  const what = r.placementGroup ? `placement group ${r.placementGroup}${r.owner ? ` (${r.owner})` : ''}` : r.owner;
  return `  ${what}: ${r.waitingOn}`;
}

/** Polls the drain status until drained, printing what is left whenever it changes; fails at the deadline. */
async function waitDrained(cluster: Cluster, id: string, timeoutMs: number): Promise<DrainStatusView> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const s = await cluster.drainStatus(id);
    if (s.drained) return s;
    if (!s.node.draining) throw new MusterError(ErrorCode.FAILED_PRECONDITION, `node ${id} was uncordoned while waiting for it to drain`);
    const now = s.remaining.map(item).join('\n');
    if (now !== last) process.stderr.write(`waiting… ${s.remaining.length} left on ${id}:\n${now}\n`);
    last = now;
    if (Date.now() >= deadline) {
      throw new MusterError(ErrorCode.DEADLINE_EXCEEDED, `node ${id} is not drained after ${timeoutMs / 1000} s; ${s.remaining.length} left:\n${now}`);
    }
    await new Promise((r) => setTimeout(r, Math.min(500, Math.max(0, deadline - Date.now()))));
  }
}
