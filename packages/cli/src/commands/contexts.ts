/**
 * The client config file's contexts (@muster/common client-config.ts), as
 * kubectl's `config use-context` / `config get-contexts`:
 *
 *   muster use-context <name>         make <name> the current context
 *   muster config get-contexts        list them, the current one starred
 *
 * `muster up` writes the context of the cluster it starts; the file is
 * MUSTER_CONFIG, default ~/.muster/config.yaml.
 */
import type { Command } from 'commander';
import { clientConfigPath, loadClientContext, readClientConfig, writeClientConfig } from '@muster/common';

async function useContext(name: string): Promise<void> {
  const file = clientConfigPath();
  await loadClientContext(name, file); // refuses an unknown name, listing the known ones
  const config = await readClientConfig(file);
  config['current-context'] = name;
  await writeClientConfig(config, file);
  process.stdout.write(`current context: ${name} (${file})\n`);
}

export function contextCommands(program: Command): void {
  program
    .command('use-context <name>')
    .description('make <name> the current context of the client config file [MUSTER_CONFIG, default ~/.muster/config.yaml]')
    .action(useContext);

  const config = program.command('config').description('the client config file: contexts (address, CA, certificate, key, token file)');
  config.command('use-context <name>').description('make <name> the current context').action(useContext);
  config
    .command('get-contexts')
    .description('list the contexts, the current one marked *')
    .option('--json', 'as JSON')
    .action(async (f: { json?: boolean }) => {
      const file = clientConfigPath();
      const c = await readClientConfig(file);
      if (f.json) {
        process.stdout.write(`${JSON.stringify(c, null, 2)}\n`);
        return;
      }
      const names = Object.keys(c.contexts);
      if (names.length === 0) {
        process.stdout.write(`no contexts in ${file}\n`);
        return;
      }
      for (const n of names) {
        const ctx = c.contexts[n]!;
        const how = ctx.insecure ? 'insecure' : ctx.cert ? `tls, cert ${ctx.cert}` : ctx.ca ? 'tls, no cert' : 'no tls';
        process.stdout.write(`${n === c['current-context'] ? '*' : ' '} ${n}\t${ctx.address}\t${how}\n`);
      }
    });
}
