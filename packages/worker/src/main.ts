#!/usr/bin/env node
/**
 * muster-worker: the node agent.
 *
 *   muster-worker [run] --head HOST:PORT --token-file FILE [--profile NAME] ...
 *   muster-worker inventory [--profile NAME | --topo F --query-gpu F --list F] [--json]
 *
 * `run` prints `{"msg":"worker registered",...}` once registered (the test
 * kit waits for it) and re-registers by itself whenever the head comes back.
 */
import { Command } from 'commander';
import { flagSpelling, givenFlags, isMusterError, optionHelp, quietIpServernameWarning, secretFlagWarnings } from '@muster/common';
import { CLIENT_ENV } from '@muster/contracts';
import { createLogger } from '@muster/common/log';
import { loadWorkerConfig, workerOptions } from './config.js';
import { runInventoryCommand } from './inventory/index.js';
import { startWorker } from './worker.js';

quietIpServernameWarning();

const program = new Command('muster-worker').description('Muster worker agent: inventory, registration, shard supervision').showHelpAfterError();

const run = program
  .command('run', { isDefault: true })
  .description('connect to the head and serve this node')
  .option('--config <file>', 'YAML or JSON config file (layered under MUSTER_* env and flags)');
for (const o of workerOptions) run.option(flagSpelling(o), optionHelp(o));
run.action(async (opts: Record<string, string>) => {
  const log = createLogger('worker');
  try {
    const flags = givenFlags(workerOptions, opts);
    const config = loadWorkerConfig({ file: opts.config, flags });
    for (const warning of secretFlagWarnings(workerOptions, flags)) log.warn(warning);
    // Read once; no child (rank, probe, nvidia-smi) may inherit it. Ranks' env is built from nothing anyway (shards/process.ts).
    delete process.env[CLIENT_ENV.TOKEN];
    const worker = await startWorker(config, log.child({ nodeId: config.nodeId }));
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'worker stopping');
      await worker.close();
      process.exit(0);
    };
    // A close that fails still ends the process: say so and exit non-zero.
    const stopOrExit = (signal: string) => {
      stop(signal).catch((e: unknown) => {
        log.error({ err: e instanceof Error ? e.message : e }, 'worker did not stop cleanly; exiting');
        process.exit(1);
      });
    };
    process.on('SIGTERM', () => stopOrExit('SIGTERM'));
    process.on('SIGINT', () => stopOrExit('SIGINT'));
  } catch (e) {
    log.fatal({ code: isMusterError(e) ? e.code : undefined, err: e instanceof Error ? e.message : e }, 'worker failed to start');
    process.exit(1);
  }
});

program
  .command('inventory')
  .description('print this node\'s GPU inventory without connecting to anything')
  .option('--profile <name>', 'simulated profile')
  .option('--topo <file>', 'recorded `nvidia-smi topo -m` output')
  .option('--query-gpu <file>', 'recorded `nvidia-smi --query-gpu=... --format=csv` output')
  .option('--list <file>', 'recorded `nvidia-smi -L` output')
  .option('--nvlink-domain <name>', 'multi-node NVLink domain of this node')
  .option('--json', 'print JSON')
  .action(async (opts: { profile?: string; topo?: string; queryGpu?: string; list?: string; nvlinkDomain?: string; json?: boolean }) => {
    try {
      process.stdout.write(`${await runInventoryCommand(opts)}\n`);
    } catch (e) {
      process.stderr.write(`muster-worker inventory: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(2);
    }
  });

await program.parseAsync();
