import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpError, RateLimiter, authenticate, authorize, checkDeclaredLength, takeToken } from './gateway-auth.js';
import { KeyRing, createKey, hashKey, parseKeysFile, readKeysFile, removeKey, type KeyEntry } from './gateway-keys.js';

const HASH = 'a'.repeat(64);
const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
const refusal = (f: () => unknown): HttpError => {
  try {
    f();
  } catch (e) {
    if (e instanceof HttpError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
};

describe('the keys file', () => {
  it('refuses unknown keys with a suggestion, bad hashes, empty rights and duplicates, naming the field', () => {
    expect(() => parseKeysFile('keys:\n  - { name: a, sha256: ' + HASH + ', group: [x] }\n', 'k.yaml')).toThrow(/k\.yaml: keys\[0\]\.groups: missing: a list of groups.*; keys\[0\]\.group: unknown key; did you mean "groups"\?/);
    expect(() => parseKeysFile('keys:\n  - { name: a, sha256: abc, groups: [x] }\n', 'k.yaml')).toThrow(/keys\[0\]\.sha256: expected the hex SHA-256/);
    expect(() => parseKeysFile('keys:\n  - { name: a, sha256: ' + HASH + ', groups: [] }\n', 'k.yaml')).toThrow(/keys\[0\]\.groups: list at least one group/);
    expect(() => parseKeysFile(`keys:\n  - { name: a, sha256: ${HASH}, groups: "*" }\n  - { name: a, sha256: ${'b'.repeat(64)}, groups: "*" }\n`, 'k.yaml')).toThrow(/keys\[1\]\.name: duplicate key name "a"/);
    expect(() => parseKeysFile(`keys:\n  - { name: a, sha256: ${HASH}, groups: "*", burst: 5 }\n`, 'k.yaml')).toThrow(/keys\[0\]\.burst: burst needs ratePerSecond/);
    expect(() => parseKeysFile('keys: [\n', 'k.yaml')).toThrow(/k\.yaml/);
    expect(parseKeysFile('', 'k.yaml')).toEqual({ keys: [] });
  });

  describe('on disk', () => {
    let dir: string;
    beforeEach(async () => (dir = await mkdtemp(join(tmpdir(), 'gw-keys-'))));
    afterEach(() => rm(dir, { recursive: true, force: true }));

    it('create stores only the hash (0600), returns a 32-byte random key once; rm removes it', async () => {
      const path = join(dir, 'keys.yaml');
      const key = await createKey(path, { name: 'web', groups: ['echo'], ratePerSecond: 5 });
      expect(key).toMatch(/^mgw_[A-Za-z0-9_-]{43}$/);
      const text = await readFile(path, 'utf8');
      expect(text).not.toContain(key);
      expect(text).toContain(hashKey(key));
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      const other = await createKey(path, { name: 'ops', groups: '*' });
      expect(other).not.toBe(key);
      await expect(createKey(path, { name: 'web', groups: ['x'] })).rejects.toThrow(/already has a key named "web"/);
      await expect(createKey(path, { name: 'bad name', groups: ['x'] })).rejects.toThrow(/name: expected letters/);
      await removeKey(path, 'web');
      expect((await readKeysFile(path)).keys.map((k) => k.name)).toEqual(['ops']);
      await expect(removeKey(path, 'web')).rejects.toThrow(/no key named "web"/);
    });

    it('a missing keys file is an error for the gateway', async () => {
      await expect(readKeysFile(join(dir, 'none.yaml'))).rejects.toThrow(/cannot read keys file/);
      await writeFile(join(dir, 'bad.yaml'), 'keys: 3\n');
      await expect(readKeysFile(join(dir, 'bad.yaml'))).rejects.toThrow(/keys:/);
    });
  });
});

describe('authentication and rights', () => {
  const key = 'mgw_' + 'k'.repeat(43);
  const entry: KeyEntry = { name: 'web', sha256: hashKey(key), groups: ['echo'] };
  const ring = new KeyRing({ keys: [entry, { name: 'all', sha256: hashKey(`${key}x`), groups: '*' }] });

  it('401 without a key or with an unknown one, with WWW-Authenticate; Bearer and x-api-key both work', () => {
    const none = refusal(() => authenticate(ring, req({})));
    expect(none).toMatchObject({ status: 401, code: 'MUSTER_UNAUTHENTICATED', headers: { 'www-authenticate': 'Bearer realm="muster-gateway"' } });
    expect(refusal(() => authenticate(ring, req({ authorization: `Bearer ${key}y` })))).toMatchObject({ status: 401, message: 'unknown API key' });
    expect(refusal(() => authenticate(ring, req({ authorization: 'Bearer short' })))).toMatchObject({ status: 401 });
    expect(authenticate(ring, req({ authorization: `Bearer ${key}` }))).toEqual({ entry, header: 'authorization' });
    expect(authenticate(ring, req({ 'x-api-key': key }))).toEqual({ entry, header: 'x-api-key' });
    // With both, x-api-key is the gateway's and authorization the HTTP shard's own.
    expect(authenticate(ring, req({ 'x-api-key': key, authorization: 'Bearer for-the-shard' }))).toEqual({ entry, header: 'x-api-key' });
  });

  it('403 for a group the key does not name; "*" calls every group', () => {
    expect(() => authorize(entry, 'echo')).not.toThrow();
    expect(refusal(() => authorize(entry, 'llm'))).toMatchObject({ status: 403, code: 'MUSTER_PERMISSION_DENIED', message: expect.stringMatching(/"web" may not call group "llm"/) });
    expect(() => authorize(ring.lookup(`${key}x`)!, 'llm')).not.toThrow();
  });

  it('413 on a declared length over the limit, before any body is read', () => {
    expect(refusal(() => checkDeclaredLength(req({ 'content-length': '2049' }), 2048))).toMatchObject({ status: 413, code: 'MUSTER_RESOURCE_EXHAUSTED' });
    expect(() => checkDeclaredLength(req({ 'content-length': '2048' }), 2048)).not.toThrow();
  });
});

describe('the token bucket', () => {
  it('starts full, refills at the rate, caps at the burst, and says when a token comes back', () => {
    let r = takeToken(undefined, 2, 2, 0);
    expect(r).toMatchObject({ ok: true, bucket: { tokens: 1 } });
    r = takeToken(r.bucket, 2, 2, 0);
    expect(r.ok).toBe(true);
    r = takeToken(r.bucket, 2, 2, 100);
    expect(r).toMatchObject({ ok: false, retryAfterMs: 400 }); // 0.2 tokens after 100 ms at 2/s: the missing 0.8 take 400 ms
    expect(takeToken(r.bucket, 2, 2, 500).ok).toBe(true);
    expect(takeToken({ tokens: 0, at: 0 }, 2, 2, 60_000).bucket.tokens).toBe(1); // capped at 2, one taken
  });

  it('answers 429 with Retry-After per key, leaves unlimited keys alone, and keeps only buckets of current keys', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    const limited: KeyEntry = { name: 'slow', sha256: HASH, groups: '*', ratePerSecond: 0.5, burst: 1 };
    const free: KeyEntry = { name: 'free', sha256: 'b'.repeat(64), groups: '*' };
    limiter.take(limited);
    const e = refusal(() => limiter.take(limited));
    expect(e).toMatchObject({ status: 429, headers: { 'retry-after': '2' } });
    for (let i = 0; i < 100; i++) limiter.take(free);
    now = 2_000;
    expect(() => limiter.take(limited)).not.toThrow();
    expect(limiter.size).toBe(1);
    limiter.retain(new Set());
    expect(limiter.size).toBe(0);
  });
});
