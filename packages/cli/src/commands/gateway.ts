/** `muster gateway`: HTTP access to replica groups for non-TS clients. */
import type { Command } from 'commander';
import { parseHostPort } from '@muster/common';
import { addConnectionFlags, connectFromFlags, type ConnectionFlags } from '../connection.js';
import { startGateway } from '../gateway.js';

export function gatewayCommand(program: Command): void {
  addConnectionFlags(program.command('gateway').description('serve replica groups over HTTP (POST /v1/groups/<group>/call|stream)'))
    .option('--listen <host:port>', 'where to listen', '127.0.0.1:8080')
    .action(async (flags: ConnectionFlags & { listen: string }) => {
      const listen = parseHostPort(flags.listen, '--listen');
      const cluster = await connectFromFlags(flags);
      const gw = await startGateway(cluster, listen);
      process.stdout.write(`${JSON.stringify({ msg: 'gateway ready', address: gw.address })}\n`);
      const stop = async () => {
        await gw.close();
        cluster.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });
}
