/**
 * An application that imports `@muster/sdk` loads neither pino nor the
 * OpenTelemetry Prometheus exporter nor the trace SDK and its OTLP exporter:
 * those are the processes' business (`@muster/common/log`,
 * `@muster/common/metrics`, `@muster/common/tracing`), not a library's.
 *
 * How it is seen: a fresh node process imports the built sdk with loader
 * hooks that record every module URL the ESM loader resolves, plus the
 * CommonJS modules in require.cache at the end. The same probe on
 * `@muster/common/metrics` must see the exporter, or the probe proves nothing.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'muster-imports-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `node <fixture>` (from test/, where the workspace packages resolve) and returns what it loaded. */
async function loaded(script: string, args: string[] = []): Promise<string[]> {
  const record = join(dir, `${script}-${args.join('-') || 'plain'}.txt`);
  await execa(process.execPath, [join(fixtures, script), ...args], { env: { RECORD_IMPORTS_TO: record }, timeout: 30_000 });
  return (await readFile(record, 'utf8')).split('\n').filter(Boolean);
}

const heavy = (mods: string[]) => mods.filter((m) => /[/\\](pino|@opentelemetry[/\\](exporter-prometheus|sdk-trace-node|sdk-trace-base|exporter-trace-otlp-http))[/\\]/.test(m));

describe('what importing @muster/sdk loads', () => {
  it('loads neither pino nor the Prometheus exporter nor the trace SDK', async () => {
    const mods = await loaded('import-sdk.mjs');
    expect(mods.some((m) => m.includes('/packages/sdk/dist/'))).toBe(true);
    expect(heavy(mods)).toEqual([]);
  });

  it('the same probe does see them when a process asks for logs and metrics', async () => {
    const mods = await loaded('import-sdk.mjs', ['with-observability']);
    expect(heavy(mods).some((m) => m.includes('pino'))).toBe(true);
    expect(heavy(mods).some((m) => m.includes('exporter-prometheus'))).toBe(true);
    expect(heavy(mods).some((m) => m.includes('sdk-trace-node'))).toBe(true);
    expect(heavy(mods).some((m) => m.includes('exporter-trace-otlp-http'))).toBe(true);
  });
});
