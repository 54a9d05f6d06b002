#!/usr/bin/env node
/**
 * muster-head: the control plane process.
 *
 * Prints one JSON log line `{"msg":"head ready","address":...,"role":...}`
 * once it serves (as leader or standby), and "became leader" / "leadership
 * lost" as its role changes, so scripts (and the test kit) can wait for
 * them. SIGTERM/SIGINT stop it cleanly: a leader resigns so a standby takes
 * over at once, connections are drained, the store flushed.
 */
import { Command } from 'commander';
import { flagSpelling, givenFlags, isMusterError, optionHelp, quietIpServernameWarning, secretFlagWarnings } from '@muster/common';
import { createLogger } from '@muster/common/log';
import { headOptions, loadHeadConfig, tokenPath } from './config.js';
import { startHead } from './head.js';

quietIpServernameWarning();

const program = new Command('muster-head')
  .description('Muster head: cluster state, scheduling, agent and SDK API')
  .option('--config <file>', 'YAML or JSON config file (layered under MUSTER_* env and flags)')
  // A one-off act on a damaged data dir, so a flag only: never a setting left in a file or the environment.
  .option('--repair-wal', 'embedded store: truncate a log damaged before its end at the bad frame instead of refusing to start (what is cut is saved beside it; back up the data dir first)')
  .showHelpAfterError();
for (const o of headOptions) program.option(flagSpelling(o), optionHelp(o));
program.parse();

const log = createLogger('head');
const opts = program.opts<Record<string, string>>();
const flags = givenFlags(headOptions, opts);
const repairWal = (opts as { repairWal?: boolean }).repairWal === true;

async function main(): Promise<void> {
  const config = loadHeadConfig({ file: opts.config, flags });
  for (const warning of secretFlagWarnings(headOptions, flags)) log.warn(warning);
  const head = await startHead(config, log, { repairWal });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'head stopping');
    await head.close();
    log.info('head stopped');
    process.exit(0);
  };
  // A close that fails still ends the process: say so and exit non-zero.
  const stopOrExit = (signal: string) => {
    stop(signal).catch((e: unknown) => {
      log.error({ err: e instanceof Error ? e.message : e }, 'head did not stop cleanly; exiting');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stopOrExit('SIGTERM'));
  process.on('SIGINT', () => stopOrExit('SIGINT'));
  // Only now: whoever waits for this line may signal us at once, and must find the handlers in place.
  log.info(
    { address: head.address, advertise: head.advertiseAddress, role: head.term ? 'leader' : 'standby', headId: head.headId, store: head.store.kind, metrics: head.metricsAddress, dashboard: head.dashboardUrl, tokenFile: tokenPath(config), dataDir: config.dataDir },
    'head ready',
  );
}

main().catch((e: unknown) => {
  log.fatal({ code: isMusterError(e) ? e.code : undefined, err: e instanceof Error ? e.message : e }, 'head failed to start');
  process.exit(1);
});
