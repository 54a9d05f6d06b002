/**
 * `muster gateway`: HTTP(S) access to replica groups for non-TS clients, and
 * `muster gateway key create|ls|rm`: the API keys it accepts (gateway-keys.ts).
 *
 * The gateway prints `{"msg":"gateway ready","address":…,"url":…}` on stdout
 * once it serves; its warnings and reloads are JSON lines on stderr. SIGHUP
 * re-reads the keys file and the TLS certificate; so does a change of the
 * keys file (polled every second).
 */
import type { Command } from 'commander';
import { ErrorCode, MusterError, optionHelp, parseHostPort, parseList } from '@muster/common';
import { ALL_GROUPS, CLIENT_ENV } from '@muster/contracts';
import { addConnectionFlags, connectFromFlags, type ConnectionFlags } from '../connection.js';
import { table } from '../format.js';
import { startGateway } from '../gateway.js';
import { gatewayOptions, loadGatewayConfig } from '../gateway-config.js';
import { createKey, readKeysFile, removeKey } from '../gateway-keys.js';
import { GatewayObserver } from '../gateway-metrics.js';
import { startMetrics } from '@muster/common/metrics';
import { startTracing } from '@muster/common/tracing';

const KEYS_FILE_ENV = gatewayOptions.find((o) => o.key === 'keysFile')!.env!;

function log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
}

function numberFlag(raw: string, flag: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${flag}: expected a number, got "${raw}"`);
  return n;
}

export function gatewayCommand(program: Command): void {
  // `gateway key create --keys-file F`: the subcommand's --keys-file, not the server's. Commander
  // needs positional options on every ancestor for that; `muster` itself has no options to lose.
  program.enablePositionalOptions();
  const gateway = addConnectionFlags(program.command('gateway').description('serve replica groups over HTTP(S) to API key holders (POST /v1/groups/<group>/call|stream)'))
    .option('--config <file>', 'YAML or JSON gateway config file (layered under MUSTER_GATEWAY_* env and flags)')
    .enablePositionalOptions();
  for (const o of gatewayOptions) {
    const help = optionHelp(o);
    // The CLI's connection flags may have a --tls-cert/--tls-key of their own (the certificate a
    // client shows the head). On `muster gateway` the one option names the HTTPS files; the link to
    // the head then takes its certificate from the environment or the context (see the action).
    const same = gateway.options.find((x) => x.long === `--${o.flag}`);
    if (same) same.description = help;
    else if (o.key === 'noAuth' || o.boolean) gateway.option(`--${o.flag}`, help);
    else gateway.option(`--${o.flag} <value>`, help);
  }
  gateway.action(async (raw: ConnectionFlags & Record<string, unknown>) => {
    // Commander turns --no-auth into `auth: false`.
    const flags = Object.fromEntries(gatewayOptions.map((o) => [o.key, o.key === 'noAuth' ? (raw.auth === false ? 'true' : undefined) : raw[o.key] === true ? 'true' : (raw[o.key] as string | undefined)]));
    const config = loadGatewayConfig({ file: raw.config as string | undefined, flags });
    const listen = parseHostPort(config.listen, '--listen');
    if (config.noAuth) log('warn', 'the gateway serves WITHOUT authentication (--no-auth): anyone who reaches it may call every replica group');
    // --tls-cert/--tls-key are the gateway's HTTPS pair here, never a client certificate for the
    // head: its own client pair is MUSTER_TLS_CERT/MUSTER_TLS_KEY (kept beside a --tls-ca flag), or
    // the context's.
    // Tracing (gateway-tracing.ts): on with --otlp-endpoint or the standard OTEL_EXPORTER_OTLP_* variables; off by default.
    // First: a malformed endpoint or sampler stops the gateway before anything listens.
    const tracing = startTracing({ service: 'muster-gateway', endpoint: config.otlpEndpoint, warn: (m) => log('warn', m) });
    // Global: the gateway's routers record through the OpenTelemetry API (muster_router_*), served here too.
    // Without --metrics-listen (the default) nothing is started: no provider records what no one serves.
    const metrics = config.metricsListen
      ? await startMetrics('gateway', config.metricsListen, { tokenFile: config.metricsTokenFile, tlsCert: config.metricsTlsCert, tlsKey: config.metricsTlsKey }, { global: true, warn: (m) => log('warn', m) })
      : undefined;
    const observer = new GatewayObserver({ meter: metrics?.meter, sample: config.requestLogSample, log: ({ msg, ...line }) => log('status' in line ? (line.status >= 500 ? 'error' : line.status >= 400 ? 'warn' : 'info') : 'warn', msg, line) });
    const cluster = await connectFromFlags({ ...raw, tlsCert: process.env[CLIENT_ENV.TLS_CERT], tlsKey: process.env[CLIENT_ENV.TLS_KEY] } as ConnectionFlags, { direct: !config.natsOnly }).catch(async (e: unknown) => {
      await metrics?.close();
      throw e;
    });
    const gw = await startGateway(cluster, {
      observer,
      listen,
      keysFile: config.keysFile,
      noAuth: config.noAuth,
      maxBodyBytes: config.maxBodyBytes,
      trustTraceparent: config.trustTraceparent,
      tls: config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey } : undefined,
      log,
    }).catch(async (e: unknown) => {
      cluster.close();
      await metrics?.close();
      throw e;
    });
    const stop = async () => {
      await gw.close();
      cluster.close();
      await metrics?.close();
      await tracing.shutdown();
      process.exit(0);
    };
    process.once('SIGINT', () => void stop());
    process.once('SIGTERM', () => void stop());
    process.on('SIGHUP', () => void gw.reload().catch(() => undefined)); // a failed reload is logged and changes nothing
    // Only now: whoever waits for this line may signal us at once, and must find the handlers in place.
    process.stdout.write(`${JSON.stringify({ msg: 'gateway ready', address: gw.address, url: gw.url, auth: config.noAuth ? 'none' : 'api-keys', ...(metrics?.address ? { metrics: metrics.address } : {}), ...(tracing.url ? { traces: tracing.url, sampler: tracing.sampler } : {}) })}\n`);
  });

  const key = gateway.command('key').description('API keys of the gateway: only their SHA-256 is stored');
  const keysFileOption = `keys file [env ${KEYS_FILE_ENV}]`;
  const keysFileOf = (flags: { keysFile?: string }): string => {
    const path = flags.keysFile ?? process.env[KEYS_FILE_ENV];
    if (!path) throw new Error(`give the keys file: --keys-file FILE or ${KEYS_FILE_ENV}`);
    return path;
  };

  key
    .command('create')
    .description('make a key, print it once (stdout), store its hash (the file is written 0600)')
    .option('--keys-file <file>', keysFileOption)
    .requiredOption('--name <name>', 'who holds the key (letters, digits, . _ @ -)')
    .requiredOption('--groups <a,b|*>', 'replica groups the key may call, comma-separated, or * for every group')
    .option('--rate <per-second>', 'requests per second the key may make (token bucket; default: unlimited)')
    .option('--burst <n>', 'requests the key may make at once (default: the rate, at least 1)')
    .action(async (flags: { keysFile?: string; name: string; groups: string; rate?: string; burst?: string }) => {
      const path = keysFileOf(flags);
      const groups = flags.groups.trim() === ALL_GROUPS ? ALL_GROUPS : parseList(flags.groups);
      const secret = await createKey(path, {
        name: flags.name,
        groups,
        ...(flags.rate !== undefined ? { ratePerSecond: numberFlag(flags.rate, '--rate') } : {}),
        ...(flags.burst !== undefined ? { burst: numberFlag(flags.burst, '--burst') } : {}),
      });
      process.stdout.write(`${secret}\n`);
      process.stderr.write(`muster: key "${flags.name}" added to ${path} (its hash only): the key above is shown this once\n`);
    });

  key
    .command('ls')
    .description('list the keys of a keys file (names and rights; no secret is there to show)')
    .option('--keys-file <file>', keysFileOption)
    .option('--json', 'print JSON')
    .action(async (flags: { keysFile?: string; json?: boolean }) => {
      const file = await readKeysFile(keysFileOf(flags));
      if (flags.json) return void process.stdout.write(`${JSON.stringify(file.keys.map(({ sha256: _, ...k }) => k), null, 2)}\n`);
      if (file.keys.length === 0) return void process.stdout.write('no keys\n');
      process.stdout.write(`${table(['NAME', 'GROUPS', 'RATE/S', 'BURST'], file.keys.map((k) => [
        k.name, k.groups === ALL_GROUPS ? ALL_GROUPS : k.groups.join(','), k.ratePerSecond === undefined ? '-' : String(k.ratePerSecond), k.burst === undefined ? '-' : String(k.burst),
      ]))}\n`);
    });

  key
    .command('rm')
    .description('remove a key: a running gateway refuses it within a second (or at once on SIGHUP)')
    .option('--keys-file <file>', keysFileOption)
    .requiredOption('--name <name>', 'the key to remove')
    .action(async (flags: { keysFile?: string; name: string }) => {
      const path = keysFileOf(flags);
      await removeKey(path, flags.name);
      process.stdout.write(`key "${flags.name}" removed from ${path}\n`);
    });
}
