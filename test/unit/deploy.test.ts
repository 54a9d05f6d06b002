/**
 * Deployment artifacts besides the Helm chart (chart.test.ts checks that): the
 * worker's topology init script (shipped in the chart's files/), the
 * Dockerfile, the systemd units and their env files, and docs/deploy.md.
 * Nothing here needs a cluster, Docker or a GPU. The checks that run local
 * etcd / nats-server / systemd-analyze binaries skip where they are absent.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { headOptions, loadHeadConfig } from '@muster/head';
import { loadWorkerConfig, workerOptions } from '@muster/worker';
import {
  SECRETISH, VARIANTS, checkOptions, cliContainers, flagsToKeys, has, output, parseFlags, read, render, repoRoot,
} from './deploy-helpers.js';

describe('worker topology init script (deploy/helm/muster/files/worker-topology.mjs)', () => {
  const script = join(repoRoot, 'deploy/helm/muster/files/worker-topology.mjs');
  let server: Server;
  let base: string;
  let dir: string;
  const nodes: Record<string, Record<string, string>> = {
    'gpu-1': { 'topology.kubernetes.io/zone': 'us-east-1a', 'muster.io/rack': 'r12', 'nvidia.com/gpu.clique': 'abc.3', 'kubernetes.io/os': 'linux' },
    'gpu-2': { 'topology.kubernetes.io/zone': 'us-east-1a', 'muster.io/zone': 'hall-2', 'muster.io/nvlink-domain': 'nvl72-a', 'nvidia.com/gpu.clique': 'abc.3' },
    'gpu-3': {},
  };
  const requests: IncomingMessage[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'muster-topology-'));
    mkdirSync(join(dir, 'sa'));
    writeFileSync(join(dir, 'sa', 'token'), 'sa-token\n');
    server = createServer((req, res) => {
      requests.push(req);
      const m = /^\/api\/v1\/nodes\/([^/]+)$/.exec(req.url ?? '');
      const labels = m ? nodes[decodeURIComponent(m[1]!)] : undefined;
      if (req.headers.authorization !== 'Bearer sa-token') res.writeHead(401).end('unauthorized');
      else if (!labels) res.writeHead(404).end('{"kind":"Status","reason":"NotFound"}');
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Node', metadata: { name: m![1], labels } }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  const run = async (node: string) => {
    const out = join(dir, `${node}.json`);
    const { execa } = await import('execa');
    const r = await execa(process.execPath, [script], {
      reject: false,
      env: { NODE_NAME: node, MUSTER_KUBE_API: base, MUSTER_SA_DIR: join(dir, 'sa'), MUSTER_TOPOLOGY_OUT: out },
      extendEnv: false,
    });
    return { ...r, out };
  };

  it('hands zone, rack and NVLink clique to the worker through its config file', async () => {
    const r = await run('gpu-1');
    expect(r.exitCode, r.stderr).toBe(0);
    const config = loadWorkerConfig({ file: r.out, env: {} });
    expect(config.labels).toEqual({ 'muster.io/zone': 'us-east-1a', 'muster.io/rack': 'r12' });
    expect(config.nvlinkDomain).toBe('abc.3');
    expect(requests.at(-1)?.headers.authorization).toBe('Bearer sa-token');
  });

  it('prefers muster.io/ labels set on the node over mapped ones', async () => {
    const r = await run('gpu-2');
    expect(r.exitCode, r.stderr).toBe(0);
    const config = loadWorkerConfig({ file: r.out, env: {} });
    expect(config.labels).toEqual({ 'muster.io/zone': 'hall-2' });
    expect(config.nvlinkDomain).toBe('nvl72-a');
  });

  it('writes empty labels for a bare node, and fails loudly (no file) when the node cannot be read', async () => {
    const bare = await run('gpu-3');
    expect(JSON.parse(readFileSync(bare.out, 'utf8'))).toEqual({ labels: {} });
    const missing = await run('no-such-node');
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/HTTP 404/);
    expect(existsSync(missing.out)).toBe(false);
  });
});

describe('Dockerfile (deploy/docker/Dockerfile)', () => {
  const text = read('deploy/docker/Dockerfile').replace(/\\\n/g, ' ');
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages = new Map<string, string[]>();
  let current = '';
  for (const l of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(l);
    if (from) stages.set((current = from[2] ?? from[1]!), [l]);
    else stages.get(current)?.push(l);
  }

  it('copies only paths that exist in the repository', () => {
    for (const l of lines.filter((x) => /^COPY\s/.test(x) && !/--from=/.test(x))) {
      const parts = l.split(/\s+/).slice(1).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) expect(existsSync(join(repoRoot, src)), `${l}: ${src}`).toBe(true);
    }
    expect(read('deploy/docker/Dockerfile.dockerignore')).toMatch(/^\*\*\/node_modules$/m);
  });

  it.each(['head', 'worker'])('builds the %s stage from the lockfile, runs it as a non-root user, and starts the real CLI', (role) => {
    const stage = stages.get(role)!.join('\n');
    expect(stage).toMatch(/^USER\s+[1-9][0-9]*(:[1-9][0-9]*)?$/m);
    const bin = (JSON.parse(read(`packages/${role}/package.json`)) as { bin: Record<string, string> }).bin[`muster-${role}`]!;
    expect(stage).toContain(`"node", "/opt/muster/${role}/${bin.replace(/^\.\//, '')}"`);
    expect(stage).toContain(`COPY --from=build /out/${role} /opt/muster/${role}`);
    expect(text).toContain(`pnpm --filter @muster/${role} deploy --prod --legacy /out/${role}`);
    expect(text).toMatch(/pnpm install --offline --frozen-lockfile/);
    for (const env of stage.matchAll(/\b(MUSTER_[A-Z_]+)=/g)) expect(checkOptions(role === 'head' ? headOptions : workerOptions, [], [env[1]!])).toEqual([]);
  });

  it('is what the chart runs: images muster-head / muster-worker tagged with the package version', () => {
    const values = YAML.parse(read('deploy/helm/muster/values.yaml')) as { images: Record<string, { repository: string; tag: string }> };
    for (const role of ['head', 'worker'] as const) {
      const version = (JSON.parse(read(`packages/${role}/package.json`)) as { version: string }).version;
      expect(values.images[role]).toEqual({ repository: `muster-${role}`, tag: version });
      for (const files of Object.values(VARIANTS)) {
        for (const c of cliContainers(render(files).objects, role)) expect(c.image).toBe(`muster-${role}:${version}`);
      }
    }
    expect(lines[0]).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/);
  });
});

describe('systemd units (deploy/systemd)', () => {
  /** Minimal INI: [Section] then Key=Value lines; repeated keys accumulate. */
  const ini = (file: string) => {
    const out: Record<string, Record<string, string[]>> = {};
    let section = '';
    for (const raw of read(file).split('\n')) {
      const l = raw.trim();
      if (!l || l.startsWith('#') || l.startsWith(';')) continue;
      const s = /^\[(.+)\]$/.exec(l);
      if (s) out[(section = s[1]!)] = {};
      else {
        const i = l.indexOf('=');
        ((out[section] ??= {})[l.slice(0, i)] ??= []).push(l.slice(i + 1));
      }
    }
    return out;
  };
  /** KEY=VALUE lines of an env file; commented-out assignments too when asked. */
  const envFile = (file: string, withComments = false) => Object.fromEntries(read(file).split('\n')
    .map((l) => (withComments ? l.replace(/^#(?=[A-Z_]+=)/, '') : l))
    .filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

  it.each([['head', headOptions], ['worker', workerOptions]] as const)('muster-%s.service starts the real CLI as its user (the head unprivileged, the worker root so its ranks are not), with options that exist', (role, options) => {
    const unit = ini(`deploy/systemd/muster-${role}.service`);
    const exec = unit.Service!.ExecStart![0]!.split(/\s+/);
    expect(exec.slice(0, 2)).toEqual(['/usr/bin/node', `/opt/muster/${role}/dist/main.js`]);
    const bin = (JSON.parse(read(`packages/${role}/package.json`)) as { bin: Record<string, string> }).bin[`muster-${role}`];
    expect(bin).toBe('./dist/main.js');
    let args = exec.slice(2);
    if (role === 'worker') {
      expect(args[0]).toBe('run');
      args = args.slice(1);
    }
    const flags = parseFlags(args);
    const envs = unit.Service!.EnvironmentFile!.map((f) => f.replace(/^-/, ''));
    expect(envs[0]).toBe(`/etc/muster/${role}.env`);
    const env = envFile(`deploy/systemd/${role}.env`, true);
    expect(checkOptions(options, flags, Object.keys(env))).toEqual([]);
    for (const k of Object.keys(env)) expect(SECRETISH.test(k) && !k.endsWith('_FILE'), `${role}.env: ${k} is a secret`).toBe(false);
    const config = role === 'head'
      ? loadHeadConfig({ env: envFile('deploy/systemd/head.env'), flags: flagsToKeys(options, flags) })
      : loadWorkerConfig({ env: envFile('deploy/systemd/worker.env', true), flags: flagsToKeys(options, flags) });
    expect(config).toBeDefined();
    expect(unit.Service!.User![0]).toBe(role === 'worker' ? 'root' : 'muster');
    expect(unit.Service!.KillSignal![0]).toBe('SIGTERM');
    expect(unit.Install!.WantedBy![0]).toBe('multi-user.target');
  });

  it('runs NATS in operator mode over TLS with no password anywhere, and points the head at the etcd it ships', () => {
    const conf = read('deploy/systemd/nats-server.conf');
    const settings = conf.split('\n').filter((l) => !l.trimStart().startsWith('#')).join('\n');
    expect(settings).not.toMatch(/password|authorization|user/);
    expect(settings).toMatch(/^include muster\/nats\/nats-operator\.conf$/m);
    expect(conf).toMatch(/tls \{[^}]*cert_file: "\/etc\/muster\/pki\/nats\.crt"/);
    const head = envFile('deploy/systemd/head.env');
    expect(head.MUSTER_NATS_URL).toMatch(/^tls:\/\//);
    expect(head.MUSTER_NATS_ACCOUNT_SEED_FILE).toBe('/etc/muster/nats/nats-account.seed');
    expect(head.MUSTER_NATS_USER).toBeUndefined();
    expect(ini('deploy/systemd/muster-head.service').Service!.EnvironmentFile).toEqual(['/etc/muster/head.env']);
    // A worker needs no cluster token: its node certificate is its credential.
    expect(ini('deploy/systemd/muster-worker.service').Service!.ExecStart![0]).not.toMatch(/token/);
    const etcd = envFile('deploy/systemd/etcd.default');
    expect(head.MUSTER_ETCD_ENDPOINTS).toBe(etcd.ETCD_ADVERTISE_CLIENT_URLS);
  });

  it.skipIf(!has('etcd'))('etcd.default sets only settings the local etcd knows', () => {
    const help = output('etcd', ['--help']).text;
    for (const k of Object.keys(envFile('deploy/systemd/etcd.default'))) {
      expect(help, k).toContain(`--${k.replace(/^ETCD_/, '').toLowerCase().replace(/_/g, '-')} `);
    }
  });

  it.skipIf(!has('nats-server'))('nats-server.conf parses, with the files `muster cert init` and `muster nats init` write', async () => {
    const { ensureClusterPki } = await import('@muster/common/pki');
    const { createNatsTrust, operatorConfig } = await import('@muster/common/nats-auth');
    // A stand-in for /etc: the config beside muster/pki and muster/nats, as installed.
    const etc = mkdtempSync(join(tmpdir(), 'muster-etc-'));
    try {
      await ensureClusterPki(join(etc, 'muster', 'pki'));
      mkdirSync(join(etc, 'muster', 'nats'));
      writeFileSync(join(etc, 'muster', 'nats', 'nats-operator.conf'), `${operatorConfig(await createNatsTrust()).join('\n')}\n`);
      const conf = join(etc, 'nats-server.conf');
      writeFileSync(conf, read('deploy/systemd/nats-server.conf').replaceAll('/etc/muster/', `${etc}/muster/`));
      const r = output('nats-server', ['-t', '-c', conf]);
      expect(r.status, r.text).toBe(0);
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  });

  it.skipIf(!has('systemd-analyze') || !existsSync('/usr/bin/node'))('systemd-analyze verify finds nothing to say about the units', () => {
    const units = ['muster-head.service', 'muster-worker.service'].map((u) => join(repoRoot, 'deploy/systemd', u));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...units], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l.includes(basename(units[0]!)) || l.includes(basename(units[1]!)))).toEqual([]);
  });
});

describe('docs/deploy.md', () => {
  const docs = read('docs/deploy.md');
  it('covers the chart, its values files, the GPU node label, and says what was not tried', () => {
    expect(docs).toContain('helm install muster deploy/helm/muster');
    expect(docs).toContain('values-dev.yaml');
    expect(docs).toContain('muster.io/worker=true');
    expect(docs).toMatch(/^## What was and was not tried$/m);
    // The schema versions the tests validate against, as the docs state them.
    const pkg = (name: string) => (JSON.parse(read(`test/node_modules/${name}/package.json`)) as { version: string }).version;
    expect(pkg('kubernetes-models')).toBe('4.5.1');
    expect(pkg('@kubernetes-models/cert-manager')).toBe('4.4.4');
    expect(docs).toContain('Kubernetes 1.33');
    expect(docs).toContain(`helm ${/HELM_VERSION=(v[0-9.]+)/.exec(read('scripts/helm.sh'))![1]}`);
  });

  it('says how to rotate each credential the chart mounts', () => {
    const at = docs.indexOf('### Rotating credentials');
    expect(at).toBeGreaterThan(-1);
    const rows = docs.slice(at, docs.indexOf('\n### ', at + 1)).split('\n').filter((l) => l.startsWith('| ')).map((l) => l.split('|')[1]!.trim());
    for (const credential of ['cluster token', 'the CAs', 'etcd client certificate', 'NATS account seed', 'a node\'s certificate', 'leaf certificates, cert-manager', 'leaf certificates, `muster cert`']) {
      expect(rows, credential).toContain(credential);
    }
  });
});
