import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ErrorCode } from './errors.js';
import { loadConfig, parseList, parseMap, parseNumber, type OptionSpec } from './config.js';

const schema = z.object({
  listen: z.string().default('127.0.0.1:7400'),
  deadAfterMs: z.number().int().min(100).default(3000),
  natsUrl: z.array(z.string()).default([]),
  labels: z.record(z.string(), z.string()).default({}),
});
const options: OptionSpec[] = [
  { key: 'listen', flag: 'listen', env: 'MUSTER_LISTEN', description: '' },
  { key: 'deadAfterMs', flag: 'dead-after-ms', env: 'MUSTER_DEAD_AFTER_MS', parse: parseNumber, description: '' },
  { key: 'natsUrl', flag: 'nats-url', env: 'MUSTER_NATS_URL', parse: parseList, description: '' },
  { key: 'labels', flag: 'labels', env: 'MUSTER_LABELS', parse: parseMap, description: '' },
];
const file = (text: string) => {
  const p = join(mkdtempSync(join(tmpdir(), 'muster-config-')), 'c.yaml');
  writeFileSync(p, text);
  return p;
};

describe('loadConfig layers: defaults < file < env < flags', () => {
  it('uses defaults when nothing is given', () => {
    expect(loadConfig(schema, options, { env: {} })).toEqual({ listen: '127.0.0.1:7400', deadAfterMs: 3000, natsUrl: [], labels: {} });
  });

  it('lets each layer override the one before', () => {
    const f = file('listen: 0.0.0.0:1\ndeadAfterMs: 5000\nnatsUrl: [nats://a:4222]\n');
    const env = { MUSTER_DEAD_AFTER_MS: '6000', MUSTER_LABELS: 'zone=a,rack=r1' };
    expect(loadConfig(schema, options, { file: f, env })).toEqual({ listen: '0.0.0.0:1', deadAfterMs: 6000, natsUrl: ['nats://a:4222'], labels: { zone: 'a', rack: 'r1' } });
    expect(loadConfig(schema, options, { file: f, env, flags: { deadAfterMs: '7000', natsUrl: 'nats://b:1,nats://c:2' } })).toMatchObject({ deadAfterMs: 7000, natsUrl: ['nats://b:1', 'nats://c:2'] });
  });

  it('names the option and the layer of a bad value', () => {
    expect(() => loadConfig(schema, options, { env: {}, flags: { deadAfterMs: '5' } })).toThrow(/--dead-after-ms \(flag\): .*>=100/);
    expect(() => loadConfig(schema, options, { env: { MUSTER_DEAD_AFTER_MS: 'soon' } })).toThrow(/MUSTER_DEAD_AFTER_MS \(env\): .*expected number/);
    const f = file('deadAfterMs: -1\n');
    expect(() => loadConfig(schema, options, { file: f, env: {} })).toThrow(new RegExp(`deadAfterMs \\(config file ${f}\\)`));
    try {
      loadConfig(schema, options, { env: {}, flags: { deadAfterMs: '5' } });
    } catch (e) {
      expect((e as { code: string }).code).toBe(ErrorCode.INVALID_ARGUMENT);
    }
  });

  it('refuses unknown keys, non-mappings and unreadable files', () => {
    expect(() => loadConfig(schema, options, { file: file('deadAfter: 1\n'), env: {} })).toThrow(/unknown option "deadAfter" \(did you mean "deadAfterMs"\?/);
    expect(() => loadConfig(schema, options, { file: file('- a\n- b\n'), env: {} })).toThrow(/expected a mapping/);
    expect(() => loadConfig(schema, options, { file: file('a: [\n'), env: {} })).toThrow(/config file/);
    expect(() => loadConfig(schema, options, { file: '/nonexistent/muster.yaml', env: {} })).toThrow(/ENOENT/);
  });
});
