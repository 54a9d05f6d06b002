#!/usr/bin/env node
/**
 * muster: the user CLI.
 *   muster up       local cluster (nats-server, head, simulated workers)
 *   muster status   nodes, GPUs and state (--json)
 *   muster node     drain <id> [--reason R] [--wait [S]], uncordon <id>, drain-status <id>
 *   muster pg       placement groups: create -f, ls, get, why, rm
 *   muster gang     gangs: launch -f, ls, get, stop;  muster logs <gang> [--rank N] [-f]
 *   muster apply    replica groups from a spec file;  muster rg ls|get|scale|delete
 *   muster gateway  HTTP access to replica groups
 *   muster cert     the cluster's CA and certificates: init, head, node, client
 *   muster use-context <name>, muster config get-contexts   the client config file
 *   muster nats     init --dir D: the NATS operator-mode trust (operator, accounts, the head's signing key)
 */
import { Command } from 'commander';
import { isMusterError, quietIpServernameWarning } from '@muster/common';
import { statusCommand } from './commands/status.js';
import { upCommand } from './commands/up.js';
import { pgCommand } from './commands/pg.js';
import { gangCommand } from './commands/gang.js';
import { logsCommand } from './commands/logs.js';
import { rgCommand } from './commands/rg.js';
import { gatewayCommand } from './commands/gateway.js';
import { nodeCommand } from './commands/node.js';
import { certCommand } from './commands/cert.js';
import { contextCommands } from './commands/contexts.js';
import { natsCommand } from './commands/nats.js';
import { dashboardCommand } from './commands/dashboard.js';

quietIpServernameWarning();

const program = new Command('muster').description('Muster: gang-scheduled GPU model serving').showHelpAfterError();
upCommand(program);
statusCommand(program);
dashboardCommand(program);
nodeCommand(program);
pgCommand(program);
gangCommand(program);
logsCommand(program);
rgCommand(program);
gatewayCommand(program);
certCommand(program);
contextCommands(program);
natsCommand(program);

program.parseAsync().catch((e: unknown) => {
  const code = isMusterError(e) ? ` [${e.code}]` : '';
  process.stderr.write(`muster: ${e instanceof Error ? e.message : String(e)}${code}\n`);
  process.exit(1);
});
