/** `muster status`: nodes, GPUs and state, as a table or JSON. */
import type { Command } from 'commander';
import { addConnectionFlags, withCluster, type ConnectionFlags } from '../connection.js';
import { clusterSummary, nodesTable } from '../format.js';

export function statusCommand(program: Command): void {
  addConnectionFlags(program.command('status').description('show the nodes of the cluster, their GPUs and state'))
    .option('--json', 'print JSON (cluster info and nodes)')
    .action(async (flags: ConnectionFlags & { json?: boolean }) => {
      await withCluster(flags, async (cluster) => {
        const [info, nodes] = [await cluster.info(), await cluster.nodes()];
        if (flags.json) {
          const { nats: _nats, ...publicInfo } = info; // never print NATS credentials
          process.stdout.write(`${JSON.stringify({ cluster: publicInfo, nodes }, null, 2)}\n`);
          return;
        }
        process.stdout.write(`head ${info.headId} (v${info.version}, ${info.store} store) at ${cluster.address}\n`);
        process.stdout.write(`${clusterSummary(nodes)}\n\n`);
        if (nodes.length > 0) process.stdout.write(`${nodesTable(nodes)}\n`);
      });
    });
}
