/**
 * The serving front door under load, as a vLLM user would test it: the
 * vLLM-like fixture (test/fixtures/vllm-like.mjs) as an HTTP replica group
 * behind a real `muster gateway`, driven by locust through the OpenAI route
 * (`POST /v1/chat/completions` by model name, one request in five streamed).
 * Reports RPS, P50/P95/P99 and errors against the seed SLOs (P50 < 100 ms,
 * P99 < 500 ms, >= 100 RPS, < 0.1% errors).
 *
 *   bench/gateway-locust/run.sh [--users 50] [--seconds 60] [--replicas 2] [--token-delay-ms 2] [--max-tokens 8]
 *
 * (run.sh makes the virtualenv with locust and passes --locust.) The
 * fixture generates `--max-tokens` tokens at `--token-delay-ms` each, with up
 * to 64 requests running per replica (vLLM batches), so what is measured is
 * the gateway, router, NATS and the worker's HTTP bridge, not a model.
 * Prints locust's summary, then one JSON line.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalCluster, spawnManaged, tempDir, waitFor } from '@muster/testing';

const { values: a } = parseArgs({
  options: {
    locust: { type: 'string', default: 'locust' },
    users: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '60' },
    replicas: { type: 'string', default: '2' },
    'token-delay-ms': { type: 'string', default: '2' },
    'max-tokens': { type: 'string', default: '8' },
  },
});
const users = Number(a.users);
const seconds = Number(a.seconds);
const replicas = Number(a.replicas);
const here = fileURLToPath(new URL('.', import.meta.url));
const fixture = fileURLToPath(new URL('../../test/fixtures/vllm-like.mjs', import.meta.url));
const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

function run(cmd: string, args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } });
    p.on('error', reject);
    p.on('exit', (code) => resolve(code ?? 1));
  });
}

/** locust's CSV "Aggregated" row → the numbers we report. */
async function aggregated(file: string) {
  const [header, ...rows] = (await readFile(file, 'utf8')).trim().split('\n').map((l) => l.split(','));
  const row = rows.find((r) => r[1]?.replace(/"/g, '') === 'Aggregated');
  if (!header || !row) throw new Error(`no Aggregated row in ${file}`);
  const col = (name: string) => Number(row[header.findIndex((h) => h.replace(/"/g, '') === name)]);
  const requests = col('Request Count');
  const failures = col('Failure Count');
  return { requests, failures, rps: Math.round(col('Requests/s') * 10) / 10, p50Ms: col('50%'), p95Ms: col('95%'), p99Ms: col('99%'), errorRate: requests ? failures / requests : 1 };
}

const cluster = await LocalCluster.start({ workers: 1, profile: 'hgx-h100-8' });
const out = await tempDir('gateway-locust-');
try {
  const sdk = await cluster.connect();
  await sdk.replicaGroups.apply({
    name: 'llm',
    httpPort: 'http',
    models: ['fake-model'],
    resources: { gpus: 1 },
    template: {
      command: process.execPath,
      args: [fixture, '--models', 'fake-model', '--token-delay-ms', a['token-delay-ms'], '--max-tokens', a['max-tokens'], '--max-concurrency', '64'],
      env: { VLLM_LIKE_QUIET: '1' },
      ports: [{ name: 'http' }],
      readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 100 },
    },
    replicas: { initial: replicas, max: replicas },
  });
  await waitFor(`${replicas} ready replicas`, async () => ((await sdk.replicaGroups.get('llm')).replicas.filter((r) => r.state === 'ready').length === replicas) || undefined, { timeoutMs: 60_000 });
  const gw = spawnManaged('gateway', process.execPath, [cli, 'gateway', '--listen', '127.0.0.1:0', '--no-auth'], { env: cluster.clientEnv() });
  try {
    const address = (JSON.parse(await gw.waitForLine((l) => l.includes('gateway ready'))) as { address: string }).address;
    const before = loadavg()[0]!;
    const csv = join(out.path, 'locust');
    const code = await run(a.locust, ['-f', join(here, 'locustfile.py'), '--headless', '-u', String(users), '-r', String(users), '-t', `${seconds}s`, '--host', `http://${address}`, '--csv', csv, '--only-summary'], { MODEL: 'fake-model' });
    const after = loadavg()[0]!;
    const r = await aggregated(`${csv}_stats.csv`);
    const targets = { p50: r.p50Ms < 100, p99: r.p99Ms < 500, rps: r.rps >= 100, errors: r.errorRate < 0.001 };
    console.log(JSON.stringify({ bench: 'gateway-locust', users, seconds, replicas, ...r, targetsMet: targets, locustExit: code, loadAverage1m: { before, after }, machine: `${cpus().length}× ${cpus()[0]?.model}` }));
  } finally {
    await gw.stop();
    sdk.close();
  }
} finally {
  await cluster.stop();
  await out.remove();
}
