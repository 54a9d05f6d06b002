/**
 * The gateway's route keys (issue 18): `x-muster-route-key`, else
 * `x-session-id`, becomes the call's `routeKey`; a key too long is refused
 * naming its header; no header leaves the call to key on its prompt.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { callOptions } from './gateway-http.js';

const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe('gateway route keys', () => {
  it('takes the route key header, else the session id, else none', () => {
    expect(callOptions(req({ 'x-muster-route-key': 'doc-7', 'x-session-id': 's1' })).routeKey).toBe('doc-7');
    expect(callOptions(req({ 'x-session-id': 's1' })).routeKey).toBe('s1');
    expect(callOptions(req({})).routeKey).toBeUndefined();
    expect('routeKey' in callOptions(req({ 'x-muster-route-key': '' }))).toBe(false);
  });

  it('refuses a key over 4096 characters, naming the header', () => {
    expect(() => callOptions(req({ 'x-session-id': 'k'.repeat(5_000) }))).toThrow(/x-session-id: at most 4096 characters, got 5000/);
  });
});
