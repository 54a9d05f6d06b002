#!/usr/bin/env node
/**
 * muster: the user CLI.
 *   muster up       local cluster (nats-server, head, simulated workers)
 *   muster status   nodes, GPUs and state (--json)
 */
import { Command } from 'commander';
import { isMusterError } from '@muster/common';
import { statusCommand } from './commands/status.js';
import { upCommand } from './commands/up.js';

const program = new Command('muster').description('Muster: gang-scheduled GPU model serving').showHelpAfterError();
upCommand(program);
statusCommand(program);

program.parseAsync().catch((e: unknown) => {
  const code = isMusterError(e) ? ` [${e.code}]` : '';
  process.stderr.write(`muster: ${e instanceof Error ? e.message : String(e)}${code}\n`);
  process.exit(1);
});
