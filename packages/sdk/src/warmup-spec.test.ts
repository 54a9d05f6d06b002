/**
 * A template's warm-up in the SDK: misspelt keys refused with a "did you
 * mean", sizes refused before anything is sent (naming the field and the
 * limit), and the wire form (a payload as JSON text or bytes, an http body
 * as text or JSON with its content type).
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '@muster/common';
import { WARMUP_LIMITS } from '@muster/contracts';
import { checkReplicaGroupSpec } from './spec-schemas.js';
import type { ReplicaGroupSpec, WarmupSpec } from './specs.js';
import { warmupToWire } from './warmup-spec.js';

const spec = (warmup: unknown): ReplicaGroupSpec => ({ name: 'echo', template: { command: 'node', ports: [{ name: 'http' }], warmup: warmup as WarmupSpec } });
const refusal = (warmup: unknown): string => {
  try {
    checkReplicaGroupSpec(spec(warmup));
  } catch (e) {
    expect((e as { code?: string }).code).toBe(ErrorCode.INVALID_ARGUMENT);
    return (e as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('warm-up specs in the SDK', () => {
  it.each([
    ['a misspelt warm-up key', { requests: [], timeout: 5 }, 'template.warmup.timeout: unknown key; did you mean "timeoutMs"?'],
    ['a misspelt request key', { requests: [{ kind: 'call', playload: 1 }] }, 'template.warmup.requests[0].playload: unknown key; did you mean "payload"?'],
    ['17 requests', { requests: Array.from({ length: 17 }, () => ({ kind: 'call', payload: 1 })) }, `template.warmup.requests: 17 items; the limit is ${WARMUP_LIMITS.requests} (warm-up requests)`],
    ['a payload over 64 KiB', { requests: [{ kind: 'call', payload: { text: 'x'.repeat(WARMUP_LIMITS.bodyBytes) } }] }, 'template.warmup.requests[0].payload: 65547 bytes; the limit is 65536 (warm-up bodyBytes)'],
    ['a string payload over 64 KiB as the JSON text it is sent as', { requests: [{ kind: 'call', payload: 'x'.repeat(WARMUP_LIMITS.bodyBytes - 1) }] }, 'template.warmup.requests[0].payload: 65537 bytes; the limit is 65536 (warm-up bodyBytes)'],
    ['bytes over 64 KiB', { requests: [{ kind: 'call', payload: new Uint8Array(WARMUP_LIMITS.bodyBytes + 1) }] }, 'template.warmup.requests[0].payload: 65537 bytes'],
    ['more than 128 KiB in all', { requests: [1, 2, 3].map(() => ({ kind: 'http', port: 'http', body: 'x'.repeat(50_000) })) }, 'template.warmup.requests: payloads, bodies, headers and commands take 150000 bytes; the limit is 131072 (warm-up totalBytes)'],
    ['a body that is not JSON', { requests: [{ kind: 'http', port: 'http', body: { n: 1n } }] }, 'template.warmup.requests[0].body: cannot be written as JSON'],
  ])('refuses %s', (_, warmup, message) => {
    expect(refusal(warmup)).toContain(message);
  });

  it('refuses a misspelt warmup key in the template', () => {
    expect(() => checkReplicaGroupSpec({ name: 'echo', template: { command: 'node', warmUp: {} } as never })).toThrow('template.warmUp: unknown key; did you mean "warmup"?');
  });

  it('takes a spec at the limits (the exec requests\' missing commands are the head\'s to refuse)', () => {
    const body = 'x'.repeat(WARMUP_LIMITS.bodyBytes);
    expect(() => checkReplicaGroupSpec(spec({ timeoutMs: 600_000, requests: [{ kind: 'http', port: 'http', body }, { kind: 'http', port: 'http', body }, ...Array.from({ length: 14 }, () => ({ kind: 'exec' }))] }))).not.toThrow();
  });

  it('puts payloads and bodies on the wire as JSON text, bytes or text', () => {
    const w = warmupToWire({
      timeoutMs: 5_000,
      requests: [
        { kind: 'call', payload: { prompt: 'hi' } },
        { kind: 'call', payload: new Uint8Array([1, 2]), stream: true },
        { kind: 'http', port: 'http', path: '/v1/completions', body: { prompt: 'hi' } },
        { kind: 'http', port: 8000, body: 'raw', headers: { 'Content-Type': 'text/plain' }, expectStatus: 204 },
        { kind: 'exec', command: ['sh', '-c', 'true'] },
      ],
    })!;
    expect(w.timeoutMs).toBe(5_000);
    const [a, b, c, d, e] = w.requests;
    expect(a).toMatchObject({ kind: 'call', json: '{"prompt":"hi"}', stream: false });
    expect(a!.payload).toHaveLength(0);
    expect(b).toMatchObject({ kind: 'call', json: '', stream: true });
    expect([...b!.payload]).toEqual([1, 2]);
    expect(c).toMatchObject({ kind: 'http', port: 'http', path: '/v1/completions', body: '{"prompt":"hi"}', headers: { 'content-type': 'application/json' } });
    expect(d).toMatchObject({ port: '8000', body: 'raw', headers: { 'Content-Type': 'text/plain' }, expectStatus: 204 });
    expect(e).toMatchObject({ kind: 'exec', command: ['sh', '-c', 'true'] });
  });
});
