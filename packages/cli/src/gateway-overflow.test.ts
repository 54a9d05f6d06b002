/** An OpenAI call that overflows asks for the overflow group's model, in the shape its group reads. */
import { describe, expect, it } from 'vitest';
import type { GroupDirectory, GroupInfo } from './gateway-groups.js';
import { renameModel } from './gateway-overflow.js';

const info = (name: string, models: string[]): GroupInfo => ({ name, http: false, models, requestTimeoutMs: 0, startupDeadlineMs: 0, ready: 1 });
const groups = { listed: (n: string) => ({ small: info('small', ['small-model', 'other']), bare: info('bare', []) })[n] } as unknown as GroupDirectory;
const body = { model: 'big-model', messages: [{ content: 'hi' }] };

describe('renameModel', () => {
  it("names the overflow group's first model in a serve() payload's parsed body", () => {
    const p = { method: 'POST', path: '/v1/chat/completions', headers: {}, body };
    expect(renameModel(groups, body)('small', p)).toEqual({ ...p, body: { ...body, model: 'small-model' } });
    expect(body.model).toBe('big-model');
  });

  it("writes an HTTP group's raw body again", () => {
    const p = { method: 'POST', path: '/v1/chat/completions', headers: {}, body: Buffer.from(JSON.stringify(body)), head: true };
    const out = renameModel(groups, body)('small', p) as typeof p;
    expect(JSON.parse(Buffer.from(out.body).toString())).toEqual({ ...body, model: 'small-model' });
    expect(out.head).toBe(true);
  });

  it('leaves the request as it came for a group that lists no model, or one not listed', () => {
    const p = { body };
    expect(renameModel(groups, body)('bare', p)).toBe(p);
    expect(renameModel(groups, body)('gone', p)).toBe(p);
  });
});
