import { describe, expect, it } from 'vitest';
import { encode } from '@muster/common';
import { encodeMessage, encodeRefused, encodeRequest, FrameReader, GOAWAY_FRAME, helloAnswerOf, helloOf, KIND, type Frame } from './direct-wire.js';

function read(bytes: Buffer, max = 1 << 20, chunk = bytes.length): Frame[] {
  const out: Frame[] = [];
  const r = new FrameReader(() => max);
  for (let i = 0; i < bytes.length; i += chunk) r.push(bytes.subarray(i, i + chunk), (f) => out.push(f));
  return out;
}

describe('direct-path frames', () => {
  const all = Buffer.concat([
    encodeRequest('_INBOX.abc.7', [['traceparent', '00-aa-bb-01']], Uint8Array.of(1, 2, 3)),
    encodeRequest('', undefined, Uint8Array.of(9)),
    encodeMessage('_INBOX.abc.7', Uint8Array.of(4, 5)),
    encodeRefused('_INBOX.abc.8'),
    GOAWAY_FRAME,
  ]);
  const expected = [
    { kind: KIND.REQUEST, reply: '_INBOX.abc.7', headers: [['traceparent', '00-aa-bb-01']], data: Uint8Array.of(1, 2, 3) },
    { kind: KIND.REQUEST, reply: '', headers: undefined, data: Uint8Array.of(9) },
    { kind: KIND.MESSAGE, subject: '_INBOX.abc.7', data: Uint8Array.of(4, 5) },
    { kind: KIND.REFUSED, reply: '_INBOX.abc.8' },
    { kind: KIND.GOAWAY },
  ];
  const plain = (fs: Frame[]) => fs.map((f) => ('data' in f ? { ...f, data: Uint8Array.from(f.data) } : f));

  it('reads back what was written, whole or a byte at a time', () => {
    expect(plain(read(all))).toEqual(expected);
    expect(plain(read(all, 1 << 20, 1))).toEqual(expected);
    expect(plain(read(all, 1 << 20, 7))).toEqual(expected);
  });

  it('refuses a frame over the bound, an empty one, an unknown kind and malformed headers', () => {
    expect(() => read(encodeMessage('s', new Uint8Array(100)), 50)).toThrow(/a frame of 104 bytes \(at most 50\)/);
    expect(() => read(Buffer.from([0, 0, 0, 0]))).toThrow(/a frame of 0 bytes/);
    expect(() => read(Buffer.from([0, 0, 0, 1, 99]))).toThrow(/unknown kind 99/);
    const badHeaders = encode({ not: 'pairs' });
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 5 + badHeaders.length, KIND.REQUEST, 0, 0, 0, badHeaders.length]), badHeaders]);
    expect(() => read(frame)).toThrow(/malformed headers/);
    // A body too short for its own lengths.
    expect(() => read(Buffer.from([0, 0, 0, 2, KIND.MESSAGE, 0]))).toThrow();
  });

  it('waits for the rest of a frame cut in its length prefix', () => {
    const r = new FrameReader(() => 1 << 20);
    const got: Frame[] = [];
    r.push(GOAWAY_FRAME.subarray(0, 2), (f) => got.push(f));
    expect(got).toEqual([]);
    r.push(GOAWAY_FRAME.subarray(2), (f) => got.push(f));
    expect(got).toEqual([{ kind: KIND.GOAWAY }]);
  });
});

describe('hello', () => {
  const id = 'ab'.repeat(16);
  const key = new Uint8Array(32);

  it('takes a well-formed hello only', () => {
    expect(helloOf({ v: 1, direct: 'hello', id, key })).toBeDefined();
    expect(helloOf({ v: 1, direct: 'hello', id: 'short', key })).toBeUndefined();
    expect(helloOf({ v: 1, direct: 'hello', id, key: new Uint8Array(16) })).toBeUndefined();
    expect(helloOf({ v: 1, direct: 'hello', id, key: 'x'.repeat(32) })).toBeUndefined();
    expect(helloOf({ v: 1, id: 'r1', deadline: 1, stream: false })).toBeUndefined();
    expect(helloOf(null)).toBeUndefined();
  });

  it('reads where to connect, or nothing from an error or an older replica', () => {
    expect(helloAnswerOf({ v: 1, direct: { host: '10.0.0.1', port: 4100 } })).toEqual({ host: '10.0.0.1', port: 4100 });
    expect(helloAnswerOf({ v: 1, ok: false, error: { code: 'MUSTER_INVALID_ARGUMENT', message: 'not a v1 data-plane request' } })).toBeUndefined();
    expect(helloAnswerOf({ v: 1, direct: { host: '', port: 4100 } })).toBeUndefined();
    expect(helloAnswerOf({ v: 1, direct: { host: 'h', port: 70_000 } })).toBeUndefined();
    expect(helloAnswerOf(undefined)).toBeUndefined();
  });
});
