/**
 * Payloads over NATS' max_payload, on a real nats-server that allows 4 KiB:
 * a request too large fails at the caller with MUSTER_RESOURCE_EXHAUSTED
 * naming both sizes, before anything is sent; an answer too large (unary, or
 * one chunk of a stream) comes back as the same error from serve() instead
 * of being dropped by NATS and leaving the caller to time out. Every call has
 * a 30 s deadline, so an error that arrives is the replica's, not a timeout's.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats, ErrorCode, type NatsConnection } from '@muster/common';
import { findBinary, freePort, spawnManaged, startNats, tempDir, waitFor, type ManagedProcess } from '@muster/testing';
import { MAX_MESSAGE_BYTES, replicaSubject } from '@muster/contracts';
import { Router, serve, type Server } from '@muster/dataplane';
import { errorOf } from './errors.test-support.js';

const MAX_PAYLOAD = 4096;
const DEADLINE_MS = 30_000;
let server: ManagedProcess;
let client: NatsConnection;
const cleanup: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  const dir = await tempDir('muster-payload-');
  cleanup.push(() => dir.remove());
  const port = await freePort();
  const conf = join(dir.path, 'nats.conf');
  await writeFile(conf, `listen: "127.0.0.1:${port}"\nmax_payload: ${MAX_PAYLOAD}\n`);
  server = spawnManaged('nats-server', await findBinary('nats-server'), ['-c', conf]);
  await server.waitForLine((l) => l.includes('Server is ready'), 15_000);
  client = await connectNats({ servers: [`nats://127.0.0.1:${port}`], jwt: '', seed: '', caPem: '', inboxPrefix: '' }, 'payload-test');
}, 30_000);

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
  await client?.close();
  await server?.stop(2_000);
});

async function group(name: string, handlers: Parameters<typeof serve>[0]): Promise<{ router: Router; replica: Server }> {
  const subject = replicaSubject('muster', name, 'r0');
  const replica = await serve(handlers, { nats: client, subject, group: name, replicaId: 'r0' });
  const router = new Router(client, undefined, { group: name });
  router.update({ group: name, version: 1, replicas: [{ replicaId: 'r0', revision: 'a', subject }] });
  cleanup.push(() => replica.close(), () => router.close());
  return { router, replica };
}

describe('payloads over max_payload', () => {
  it('the connection knows the server\'s limit', () => {
    expect(client.info?.max_payload).toBe(MAX_PAYLOAD);
  });

  it('the nats-server of a local cluster takes the one message limit of every link', async () => {
    const dir = await tempDir('muster-payload-kit-');
    const kit = await startNats({ dir: dir.path });
    try {
      const nc = await connectNats(kit.access, 'payload-kit');
      expect(nc.info?.max_payload).toBe(MAX_MESSAGE_BYTES);
      await nc.close();
    } finally {
      await kit.stop();
      await dir.remove();
    }
  });

  it('a request too large fails at once, naming its size and the limit, and reaches no replica', async () => {
    let runs = 0;
    const { router } = await group('big-req', { unary: () => ++runs });
    const e = await errorOf(router.call('x'.repeat(10_000), { timeoutMs: DEADLINE_MS }));
    expect(e.code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
    expect(e.message).toMatch(new RegExp(`its request is 100\\d\\d bytes encoded, more than the NATS max_payload of ${MAX_PAYLOAD} bytes`));
    expect(e.details).toMatchObject({ field: 'payload', limit: MAX_PAYLOAD, mayHaveRun: false });
    // The same router still serves a small call (and this one proves the replica ran nothing before it).
    expect(await router.call('small', { timeoutMs: DEADLINE_MS })).toBe(1);
  });

  it('a unary answer too large comes back as RESOURCE_EXHAUSTED from the replica, not as a timeout', async () => {
    const { router } = await group('big-reply', { unary: (n) => 'y'.repeat(n as number) });
    const started = Date.now();
    const e = await errorOf(router.call(10_000, { timeoutMs: DEADLINE_MS }));
    expect(e.code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
    expect(e.message).toMatch(new RegExp(`replica r0: the answer to call \\S+ is 100\\d\\d bytes encoded, more than the NATS max_payload of ${MAX_PAYLOAD} bytes; it was not sent`));
    expect(Date.now() - started).toBeLessThan(DEADLINE_MS);
    expect(await router.call(10, { timeoutMs: DEADLINE_MS })).toBe('y'.repeat(10));
  });

  it('a handler error too large to send is replaced the same way', async () => {
    const { router } = await group('big-error', { unary: () => { throw new Error('z'.repeat(10_000)); } });
    const e = await errorOf(router.call(null, { timeoutMs: DEADLINE_MS }));
    expect(e.code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
  });

  it('a stream chunk too large ends the stream with the error after the chunks before it, and stops the handler', async () => {
    let stoppedAfter: number | undefined;
    const { router } = await group('big-chunk', {
      stream: async function* () {
        let i = 0;
        try {
          for (; i < 100; i++) yield i === 2 ? 'w'.repeat(10_000) : i;
        } finally {
          stoppedAfter = i;
        }
      },
    });
    const got: unknown[] = [];
    const e = await errorOf((async () => {
      for await (const c of router.stream(null, { timeoutMs: DEADLINE_MS })) got.push(c);
    })());
    expect(got).toEqual([0, 1]);
    expect(e.code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
    expect(e.message).toContain('(stream chunk 2)');
    expect(stoppedAfter).toBe(2);
  });
  it('frames are cut under a max_payload lower than their own limit: calls of 1 KiB made at once all go, and their answers all come back', async () => {
    const { router } = await group('small-frames', { unary: (p) => p });
    // The replica reads frames once its load report is heard (it reports at start and every second).
    await waitFor('the replica\'s load report', () => router.stats().replicas[0]?.frames === true, { timeoutMs: 5_000 });
    const payloads = Array.from({ length: 20 }, (_, i) => `${i}:`.padEnd(1_000, 'x'));
    expect(await Promise.all(payloads.map((p) => router.call(p, { timeoutMs: DEADLINE_MS })))).toEqual(payloads);
    // 20 KiB of requests in one turn went as several frames, each under the server's 4 KiB.
    expect(router.stats().frames).toBeGreaterThanOrEqual(5);
  });
});
