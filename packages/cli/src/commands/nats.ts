/**
 * `muster nats init --dir <dir>`: the NATS trust chain of a bare-metal
 * cluster, what `muster up` makes for itself (docs/security.md, "NATS: users
 * per role"):
 *
 *   <dir>/nats-operator.conf   the operator JWT, `system_account`,
 *                              `resolver: MEMORY` and both account JWTs
 *                              preloaded (no secret; `include` it from
 *                              nats-server.conf next to its `tls {}` block)
 *   <dir>/nats-account.seed    the account signing-key seed (0600): the
 *                              head's --nats-account-seed-file, nothing else
 *   <dir>/nats-account.pub     the account public key: the head's --nats-account
 *
 * The operator and account identity keys are not kept: nothing but this
 * command can make another account, and the signing key alone makes users.
 * It refuses to overwrite a trust chain (a new one cuts every user off; see
 * "Rotating credentials" for the signing key).
 */
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { createNatsTrust, operatorConfig } from '@muster/common/nats-auth';

export const NATS_TRUST_FILES = { config: 'nats-operator.conf', seed: 'nats-account.seed', account: 'nats-account.pub' } as const;

export function natsCommand(program: Command): void {
  const nats = program.command('nats').description('NATS operator-mode trust for a cluster (docs/security.md)');
  nats
    .command('init')
    .description('create the operator, the system and Muster accounts and the head\'s signing key')
    .requiredOption('--dir <dir>', 'directory to write nats-operator.conf, nats-account.seed (0600) and nats-account.pub to')
    .action(async (flags: { dir: string }) => {
      const paths = Object.fromEntries(Object.entries(NATS_TRUST_FILES).map(([k, f]) => [k, join(flags.dir, f)])) as Record<keyof typeof NATS_TRUST_FILES, string>;
      for (const p of Object.values(paths)) {
        if (await access(p).then(() => true, () => false)) throw new Error(`${p} exists: a new trust chain would cut every NATS user off (rotate the signing key instead, docs/security.md)`);
      }
      await mkdir(flags.dir, { recursive: true, mode: 0o700 });
      const trust = await createNatsTrust();
      // The seed last: a failure before it leaves no secret behind, and nothing that works without it.
      await writeFile(paths.config, `${operatorConfig(trust).join('\n')}\n`, { mode: 0o644, flag: 'wx' });
      await writeFile(paths.account, `${trust.account}\n`, { mode: 0o644, flag: 'wx' });
      await writeFile(paths.seed, `${trust.signingSeed}\n`, { mode: 0o600, flag: 'wx' });
      process.stdout.write([
        `wrote ${paths.config} (include it in nats-server.conf), ${paths.seed} (0600) and ${paths.account}`,
        `head flags: --nats-account ${trust.account} --nats-account-seed-file ${paths.seed}`,
        '',
      ].join('\n'));
    });
}
