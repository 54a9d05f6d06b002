/**
 * `muster up`: a local cluster on this machine — a nats-server, a head on the
 * embedded store and N workers with simulated GPUs, all child processes.
 * Ctrl-C (or SIGTERM) stops every child. With `--run <command>` it runs the
 * command against the cluster once it is up, then stops it and exits with
 * the command's exit code (how the quick-start demo runs).
 *
 * TLS by default: the cluster's PKI is made in `<data-dir>/pki` (kept across
 * runs) and every link uses it; `--insecure` runs plaintext. Once up, it
 * writes a context (`--context-name`, default "local") with the admin's
 * certificate to the client config file (MUSTER_CONFIG, default
 * ~/.muster/config.yaml) and makes it current, so `muster status` in another
 * shell needs no flag; `--no-context` leaves the file alone.
 *
 * Metrics: the head serves Prometheus on 127.0.0.1:`--metrics-port` (default
 * 9400), worker i on the next ports (9401, 9402, …), as the head and worker
 * defaults are; `--metrics-port 0` picks free ports. A port that is taken
 * falls back to a free one, and the line saying where each endpoint is says
 * so. The endpoints are printed once the cluster is up (docs/observability.md).
 *
 * The web dashboard: on 127.0.0.1:`--dashboard-port` (default 7480, a taken
 * port falls back to a free one), printed once up and written to the context,
 * so `muster dashboard` finds it (docs/dashboard.md).
 *
 * `--gateway [host:port]` also runs `muster gateway` there (default
 * 127.0.0.1:8080), its metrics on 127.0.0.1:`--gateway-metrics-port` (9390).
 * It takes API keys from `<data-dir>/gateway-keys.yaml`; the first run makes
 * a key "local" for every group and writes it to `<data-dir>/gateway-key`
 * (0600): the path is printed, never the key.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { execaCommand } from 'execa';
import { LocalCluster, metricsListen, spawnManaged, type ManagedProcess } from '@muster/local';
import { ALL_GROUPS } from '@muster/contracts';
import { createKey, readKeysFile } from '../gateway-keys.js';
import { clusterSummary, nodesTable } from '../format.js';
import { clientConfigPath, setClientContext } from '@muster/common';

interface UpFlags {
  workers: string;
  profile: string;
  port: string;
  dataDir: string;
  run?: string;
  insecure?: boolean;
  context: boolean;
  contextName: string;
  metricsPort: string;
  gateway?: string | true;
  gatewayMetricsPort: string;
  dashboardPort: string;
}

/** `muster up --gateway`: the gateway's default metrics port (below the head's, clear of the workers'). */
const UP_GATEWAY_METRICS_PORT = 9390;

/** The head's dashboard port in `muster up` (a taken port falls back to a free one). */
const UP_DASHBOARD_PORT = 7480;

/** The head's default metrics port (its --metrics-listen default); workers take the ones after it. */
const UP_METRICS_PORT = 9400;

export function upCommand(program: Command): void {
  program
    .command('up')
    .description('start a local cluster: nats-server, head (embedded store) and simulated workers')
    .option('--workers <n>', 'number of simulated workers', '3')
    .option('--profile <name>', 'GPU profile of the workers (muster-worker inventory --help)', 'hgx-h100-8')
    .option('--port <port>', 'head gRPC port', '7400')
    .option('--metrics-port <port>', `Prometheus port of the head; worker i gets the port + i (0: free ports; a taken port falls back to a free one)`, String(UP_METRICS_PORT))
    .option('--dashboard-port <port>', 'the web dashboard\'s port on 127.0.0.1 (0: a free one; a taken port falls back to a free one)', String(UP_DASHBOARD_PORT))
    .option('--data-dir <dir>', 'where state, token and logs go', '.muster')
    .option('--gateway [host:port]', 'also run a gateway (API keys in <data-dir>/gateway-keys.yaml), default 127.0.0.1:8080')
    .option('--gateway-metrics-port <port>', 'with --gateway: its Prometheus port (a taken port falls back to a free one)', String(UP_GATEWAY_METRICS_PORT))
    .option('--run <command>', 'run this shell command against the cluster, then stop it')
    .option('--insecure', 'plaintext everywhere: no TLS, the token is the only credential')
    .option('--context-name <name>', 'the context written to the client config file', 'local')
    .option('--no-context', 'do not write a context to the client config file [MUSTER_CONFIG, default ~/.muster/config.yaml]')
    .action(async (flags: UpFlags) => {
      const workers = Number(flags.workers);
      const port = Number(flags.port);
      if (!Number.isInteger(workers) || workers < 0 || workers > 256) throw new Error(`--workers: expected 0..256, got "${flags.workers}"`);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: expected a port number, got "${flags.port}"`);
      const metricsPort = Number(flags.metricsPort);
      if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort + workers > 65535) throw new Error(`--metrics-port: expected a port number (with ${workers} more after it), got "${flags.metricsPort}"`);
      const metricsPortOf = (i: number) => (metricsPort ? metricsPort + i : 0);
      const dataDir = resolve(flags.dataDir);
      const logDir = join(dataDir, 'logs');
      await mkdir(logDir, { recursive: true });
      const logs = new Map<string, WriteStream>();
      const onLine = (name: string, line: string) => {
        let s = logs.get(name);
        if (!s) logs.set(name, (s = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' })));
        s.write(`${line}\n`);
      };
      const say = (s: string) => process.stdout.write(s);
      say(`starting nats-server, head on 127.0.0.1:${port} and ${workers} worker(s) (${flags.profile}); logs in ${logDir}\n`);
      // A signal during start-up stops what has started so far (the kit
      // SIGKILLs children it started when this process exits).
      const started: { cluster?: LocalCluster; gateway?: ManagedProcess } = {};
      let stopping: Promise<void> | undefined;
      const stop = () => (stopping ??= (async () => {
        say('stopping the cluster…\n');
        await started.gateway?.stop();
        await started.cluster?.stop();
        for (const s of logs.values()) s.end();
        say('stopped\n');
      })());
      const onSignal = () => void stop().then(() => process.exit(130));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);

      const dashboardPort = Number(flags.dashboardPort);
      if (!Number.isInteger(dashboardPort) || dashboardPort < 0 || dashboardPort > 65535) throw new Error(`--dashboard-port: expected a port number, got "${flags.dashboardPort}"`);
      const cluster = await LocalCluster.start({ dataDir, port, metricsPort: metricsPortOf(0), dashboardPort, workers: 0, profile: flags.profile, onLine, insecure: flags.insecure === true });
      started.cluster = cluster;
      say(`head ready at ${cluster.address} (${cluster.tls ? `TLS, CA ${cluster.tls.ca}` : 'INSECURE: plaintext'}; token: ${cluster.tokenFile})\n`);
      let registered = 0;
      const tty = process.stdout.isTTY;
      await Promise.all(Array.from({ length: workers }, (_, i) => cluster.addWorker({ nodeId: `node-${i + 1}`, metricsPort: metricsPortOf(i + 1) }).then(() => {
        registered++;
        if (tty) say(`\rworkers registered: ${registered}/${workers}`);
      })));
      if (workers) say(`${tty ? '\r' : ''}workers registered: ${registered}/${workers}\n`);
      const c = await cluster.connect();
      const nodes = await c.nodes();
      c.close();
      say(`${clusterSummary(nodes)}\n${nodes.length ? `${nodesTable(nodes)}\n` : ''}`);
      const gateway = flags.gateway ? await startGateway(cluster, flags, dataDir, onLine, started) : undefined;
      say(metricsLines(cluster, metricsPortOf, gateway && { ...gateway, wanted: Number(flags.gatewayMetricsPort) }));
      if (cluster.dashboardUrl) say(`dashboard at ${cluster.dashboardUrl} (\`muster dashboard\` prints a sign-in link; --open opens it)\n`);
      if (gateway) say(`gateway at ${gateway.url} (API key in ${gateway.keyFile}: send it as "Authorization: Bearer <key>")\n`);
      const env = cluster.clientEnv();
      if (flags.context) {
        const tls = cluster.tls;
        // The token file too: until the head authorizes by certificate alone, the token is what it checks.
        const ctx = { address: cluster.address, ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : { insecure: true }), tokenFile: cluster.tokenFile, ...(cluster.dashboardUrl ? { dashboard: cluster.dashboardUrl } : {}) };
        await setClientContext(flags.contextName, ctx);
        say(`context "${flags.contextName}" written to ${clientConfigPath()} (current)\n`);
      }
      if (flags.run) {
        say(`running: ${flags.run}\n`);
        const r = await execaCommand(flags.run, { shell: true, stdio: 'inherit', reject: false, env });
        await stop();
        process.exit(r.exitCode ?? 1);
      }
      const exports = flags.context ? '' : `  export ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')}\n`;
      say(`\ncluster is up. In another shell:\n${exports}  muster status\nCtrl-C stops it.\n`);
    });
}

interface UpGateway {
  url: string;
  metrics: string | undefined;
  keyFile: string;
}

/** Starts `muster gateway` beside the cluster (see the top of this file) and waits until it serves. */
async function startGateway(cluster: LocalCluster, flags: UpFlags, dataDir: string, onLine: (name: string, line: string) => void, started: { gateway?: ManagedProcess }): Promise<UpGateway> {
  const keysFile = join(dataDir, 'gateway-keys.yaml');
  const keyFile = join(dataDir, 'gateway-key');
  if (!(await readKeysFile(keysFile, { missingIsEmpty: true })).keys.some((k) => k.name === 'local')) {
    await writeFile(keyFile, `${await createKey(keysFile, { name: 'local', groups: ALL_GROUPS })}\n`, { mode: 0o600 });
  }
  const metricsPort = Number(flags.gatewayMetricsPort);
  if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535) throw new Error(`--gateway-metrics-port: expected a port number, got "${flags.gatewayMetricsPort}"`);
  const listen = flags.gateway === true ? '127.0.0.1:8080' : flags.gateway!;
  const args = [process.argv[1]!, 'gateway', '--listen', listen, '--keys-file', keysFile, '--metrics-listen', await metricsListen(metricsPort)];
  const proc = spawnManaged('gateway', process.execPath, args, { env: cluster.clientEnv(), onLine: (l) => onLine('gateway', l) });
  started.gateway = proc;
  const ready = JSON.parse(await proc.waitForLine((l) => l.includes('"gateway ready"'), 30_000)) as { url: string; metrics?: string };
  return { url: ready.url, metrics: ready.metrics, keyFile };
}

/** "metrics (Prometheus, loopback):", then each child's endpoint, with a note for each port that was taken. */
function metricsLines(cluster: LocalCluster, wanted: (i: number) => number, gateway?: { metrics: string | undefined; wanted: number }): string {
  const children = [...cluster.heads.slice(0, 1), ...[...cluster.workers.values()].sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }))];
  const line = (name: string, at: string | undefined, want: number, flag: string) => {
    if (!at) return `  ${name}: no metrics endpoint`;
    const port = Number(at.slice(at.lastIndexOf(':') + 1));
    const moved = want !== 0 && port !== want ? `  (port ${want} was taken: fell back to a free one; ${flag} changes it)` : '';
    return `  ${name}: http://${at}/metrics${moved}`;
  };
  const lines = children.map((c, i) => line(c.name, c.metricsAddress, wanted(i), '--metrics-port'));
  if (gateway) lines.push(line('gateway', gateway.metrics, gateway.wanted, '--gateway-metrics-port'));
  return `metrics (Prometheus, loopback):\n${lines.join('\n')}\n`;
}
