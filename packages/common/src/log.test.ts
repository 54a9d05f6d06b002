/**
 * Secrets never reach a log line: fields named as secrets are redacted at
 * the top of a line, one and two objects down and in HTTP headers, while
 * fields that only point at secrets (tokenFile) or share a generic name
 * (key: a store key) are kept.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, REDACTED, SECRET_FIELDS } from './log.js';
import { withoutCredentials } from './nats.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The lines a logger wrote for `write`. */
function lines(write: (log: ReturnType<typeof createLogger>) => void): Array<Record<string, unknown>> {
  const file = join(dir, `${Math.random()}.log`);
  const fd = openSync(file, 'w');
  try {
    write(createLogger('test', { destination: fd, level: 'info' }));
  } finally {
    closeSync(fd);
  }
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

const SECRET = 's3cr3t-value-never-logged';

describe('log redaction', () => {
  it.each(SECRET_FIELDS)('redacts %s at the top, one and two levels down', (field) => {
    const [line] = lines((log) => log.info({ [field]: SECRET, config: { [field]: SECRET }, a: { b: { [field]: SECRET } } }, 'x'));
    expect(JSON.stringify(line)).not.toContain(SECRET);
    expect(line).toMatchObject({ [field]: REDACTED, config: { [field]: REDACTED }, a: { b: { [field]: REDACTED } } });
  });

  it('redacts HTTP authorization headers and a child logger\'s bindings', () => {
    const out = lines((log) => {
      log.info({ req: { headers: { authorization: `Bearer ${SECRET}`, host: 'h' } } }, 'request');
      log.child({ token: SECRET }).info('from a child');
    });
    expect(JSON.stringify(out)).not.toContain(SECRET);
    expect(out[0]).toMatchObject({ req: { headers: { authorization: REDACTED, host: 'h' } } });
  });

  it('keeps fields that only point at secrets or share a generic name', () => {
    const [line] = lines((log) => log.info({ tokenFile: '/etc/muster/token', key: '/muster/nodes/n1', tlsKey: '/pki/head.key' }, 'kept'));
    expect(line).toMatchObject({ tokenFile: '/etc/muster/token', key: '/muster/nodes/n1', tlsKey: '/pki/head.key' });
  });
});

describe('server URLs in logs and errors', () => {
  it('lose their user:password part and keep the rest', () => {
    expect(withoutCredentials('nats://muster:s3cr3t@10.0.0.1:4222')).toBe('nats://***@10.0.0.1:4222');
    expect(withoutCredentials('tls://token@nats.example:4222')).toBe('tls://***@nats.example:4222');
    expect(withoutCredentials('nats://10.0.0.1:4222')).toBe('nats://10.0.0.1:4222');
    expect(withoutCredentials('127.0.0.1:4222')).toBe('127.0.0.1:4222');
  });
});
