/**
 * `muster cert`: the cluster's certificates for bare metal, in a PKI
 * directory (@muster/common/pki; docs/security.md, "TLS on every link").
 *
 *   muster cert init   --dir D [--host h,...]      both CAs and every server and admin pair
 *   muster cert head   --dir D --host h,...        a head certificate naming these addresses
 *   muster cert node   --dir D --node-id N         nodes/N.crt|key for one worker
 *   muster cert client --dir D --name N --role R [--call g1,g2|*]
 *
 * A key is never overwritten without --force (an existing pair is kept and
 * said so; `init` fills in only what is missing). The output names the
 * files written; key material is never printed.
 */
import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CLIENT_ROLES, type ClientRole } from '@muster/contracts';
import { ensureClusterPki, issueCert, nodePairName, pairPaths, PKI_FILES, readPair, writePair, type CertRequest } from '@muster/common/pki';

const DEFAULT_HOSTS = ['localhost', '127.0.0.1', '::1'];

const list = (v: string | undefined): string[] => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/** Issues pair `name` in `dir` with the cluster CA, unless it exists and --force is not given. */
async function issue(dir: string, name: string, req: CertRequest, force: boolean): Promise<void> {
  const paths = pairPaths(dir, name);
  if (!force && (await exists(paths.key))) {
    process.stdout.write(`kept ${paths.cert} (exists; --force replaces it)\n`);
    return;
  }
  if (!(await exists(pairPaths(dir, PKI_FILES.ca).key))) throw new Error(`no CA in ${dir}: run \`muster cert init --dir ${dir}\` first`);
  const pair = await issueCert(await readPair(dir, PKI_FILES.ca), req);
  await writePair(dir, name, pair);
  process.stdout.write(`wrote ${paths.cert}\n      ${paths.key} (0600)\n`);
}

function days(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 3650) throw new Error(`--days: expected 1..3650, got "${v}"`);
  return n;
}

export function certCommand(program: Command): void {
  const cert = program.command('cert').description('create the cluster\'s CA and certificates (heads, nodes, clients) in a PKI directory');

  cert
    .command('init')
    .description('a complete PKI directory: cluster CA, head, admin, NATS, gateway, etcd CA, etcd server and client; keeps what exists')
    .requiredOption('--dir <dir>', 'the PKI directory')
    .option('--host <h,...>', 'DNS names and IPs the heads (and NATS, the gateway, etcd) are dialled at', DEFAULT_HOSTS.join(','))
    .option('--node-id <id,...>', 'also a node certificate for each of these node ids')
    .action(async (f: { dir: string; host: string; nodeId?: string }) => {
      const dir = resolve(f.dir);
      const hosts = list(f.host);
      if (hosts.length === 0) throw new Error('--host: give at least one address');
      await ensureClusterPki(dir, { hosts, nodes: list(f.nodeId) });
      process.stdout.write(`PKI in ${dir} (hosts ${hosts.join(', ')}):\n`);
      for (const name of Object.values(PKI_FILES)) process.stdout.write(`  ${pairPaths(dir, name).cert}\n`);
      for (const id of list(f.nodeId)) process.stdout.write(`  ${pairPaths(dir, nodePairName(id)).cert}\n`);
      process.stdout.write('keys beside them (.key, 0600); ca.key and etcd-ca.key sign everything: keep them off the cluster\'s machines\n');
    });

  cert
    .command('head')
    .description('a head certificate (role head) naming the addresses clients and agents dial it at')
    .requiredOption('--dir <dir>', 'the PKI directory (with ca.crt and ca.key)')
    .requiredOption('--host <h,...>', 'DNS names and IPs of the heads')
    .option('--name <file>', 'file name in the directory, without .crt', PKI_FILES.head)
    .option('--days <n>', 'validity in days (default 365)')
    .option('--force', 'replace an existing pair')
    .action(async (f: { dir: string; host: string; name: string; days?: string; force?: boolean }) => {
      const hosts = list(f.host);
      if (hosts.length === 0) throw new Error('--host: give at least one address');
      await issue(resolve(f.dir), f.name, { role: 'head', name: 'muster-head', hosts, days: days(f.days) }, f.force === true);
    });

  cert
    .command('node')
    .description('a worker\'s certificate (role node, CN = its node id): the agent may register as this node only')
    .requiredOption('--dir <dir>', 'the PKI directory (with ca.crt and ca.key)')
    .requiredOption('--node-id <id>', 'the node id the worker runs with (--node-id)')
    .option('--days <n>', 'validity in days (default 365)')
    .option('--force', 'replace an existing pair')
    .action(async (f: { dir: string; nodeId: string; days?: string; force?: boolean }) => {
      await issue(resolve(f.dir), nodePairName(f.nodeId), { role: 'node', name: f.nodeId, days: days(f.days) }, f.force === true);
    });

  cert
    .command('client')
    .description('a client certificate: a person or program with a role, and the groups it may call')
    .requiredOption('--dir <dir>', 'the PKI directory (with ca.crt and ca.key)')
    .requiredOption('--name <name>', 'who it is (the certificate\'s CN; also the file name)')
    .requiredOption('--role <role>', `one of ${CLIENT_ROLES.join(', ')}`)
    .option('--call <g,...|*>', 'replica groups it may call on the data plane (* for every group)')
    .option('--days <n>', 'validity in days (default 365)')
    .option('--force', 'replace an existing pair')
    .action(async (f: { dir: string; name: string; role: string; call?: string; days?: string; force?: boolean }) => {
      if (!(CLIENT_ROLES as readonly string[]).includes(f.role)) throw new Error(`--role: expected one of ${CLIENT_ROLES.join(', ')}, got "${f.role}"`);
      if (!/^[A-Za-z0-9._-]{1,128}$/.test(f.name) || f.name.startsWith('.')) throw new Error(`--name: "${f.name}" must be letters, digits, . _ - (it names the files)`);
      if (Object.values(PKI_FILES).includes(f.name as never)) throw new Error(`--name: "${f.name}" is a file of the PKI itself; choose another name`);
      const groups = list(f.call);
      const callGroups = groups.includes('*') ? 'all' : groups;
      await issue(resolve(f.dir), f.name, { role: f.role as ClientRole, name: f.name, callGroups, days: days(f.days) }, f.force === true);
    });
}
