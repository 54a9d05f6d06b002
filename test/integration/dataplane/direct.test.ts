/**
 * The direct path (docs/dataplane.md): routers with `direct: true` against
 * real replicas on a real nats-server — calls of every kind on the link, the
 * hello's trust (a key for one handshake, only through NATS, only with the
 * right to call the group), GOAWAY on drain and on a link's age with no call
 * lost, and a replica killed mid-call on its link.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { connect, createServer as createTlsServer } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { connectNats, decode, encode, ErrorCode, type NatsConnection } from '@muster/common';
import { waitFor, type NatsServer } from '@muster/testing';
import { useNats } from '@muster/testing/vitest';
import { callerInboxPrefix, callerPermissions, loadSubject, replicaSubject } from '@muster/contracts';
import { Router, serve, type Membership, type ReplicaInfo, type ServeHandlers, type Server } from '@muster/dataplane';
import { errorOf } from './errors.test-support.js';

let nats: NatsServer;
let client: NatsConnection;
const cleanup: (() => Promise<unknown> | unknown)[] = [];

useNats({ clientName: 'direct-test' }, (fx) => ({ server: nats, client } = fx));

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

const LINK_TLS = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-PSK-CHACHA20-POLY1305' } as const;

/** Handler runs per call id, over a test's replicas: none may run twice. */
type Runs = Map<string, number>;

async function replica(group: string, id: string, handlers: ServeHandlers, runs?: Runs, direct: { host: string; maxLinkAgeMs?: number } | false = { host: '127.0.0.1' }): Promise<{ server: Server; info: ReplicaInfo }> {
  const conn = await connectNats(nats.access, id);
  const subject = replicaSubject('muster', group, id);
  const counted: ServeHandlers = runs && handlers.unary ? { ...handlers, unary: (p, ctx) => (runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1), handlers.unary!(p, ctx)) } : handlers;
  const server = await serve(counted, { nats: conn, subject, group, replicaId: id, loadIntervalMs: 100, direct });
  cleanup.push(() => server.close(), () => conn.close());
  return { server, info: { replicaId: id, revision: 'r1', subject } };
}

function router(group: string, infos: ReplicaInfo[], opts: Partial<ConstructorParameters<typeof Router>[2]> = {}, nc = client): Router {
  const r = new Router(nc, undefined, { group, direct: true, ...opts });
  r.update(membership(group, 1, infos));
  cleanup.push(() => r.close());
  return r;
}

const membership = (group: string, version: number, replicas: ReplicaInfo[]): Membership => ({ group, version, replicas });

/** test/fixtures/direct-replica.mjs in a process of its own (killed at the end). */
async function childReplica(group: string, id: string): Promise<{ child: ChildProcess; info: ReplicaInfo }> {
  const subject = replicaSubject('muster', group, id);
  const child = fork(new URL('../../fixtures/direct-replica.mjs', import.meta.url), {
    env: { ...process.env, DIRECT_ACCESS: JSON.stringify(nats.access), DIRECT_SUBJECT: subject, DIRECT_GROUP: group, DIRECT_REPLICA: id },
    // vitest's own flags (the "source" condition) are not the fixture's: it loads the built packages.
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  cleanup.push(() => child.exitCode === null && child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`the replica exited with ${code}`)));
  });
  return { child, info: { replicaId: id, revision: 'r1', subject } };
}

/** Calls until every replica's link is up (the first calls go on NATS while it is set up). */
async function linked(r: Router, links: number): Promise<void> {
  await waitFor(`${links} direct link(s) up`, async () => {
    await r.call('warm');
    return r.stats().direct!.up === links;
  });
}

describe('the direct path', () => {
  it('carries unary calls, request frames, streams with credit and cancels once the link is up', async () => {
    let cancelled = 0;
    const { server, info } = await replica('d-all', 'r0', {
      unary: async (p, ctx) => {
        if (p === 'wait') {
          await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
          cancelled++;
          return 'aborted';
        }
        return { echo: p };
      },
      stream: async function* (p) {
        for (let i = 0; i < 40; i++) yield { i, p };
      },
    });
    const r = router('d-all', [info]);
    await linked(r, 1);
    expect(server.direct).toMatchObject({ host: '127.0.0.1', links: 1 });
    const before = r.stats().direct!.sent;
    expect(await r.call('one')).toEqual({ echo: 'one' });
    // 20 in one turn: one request frame on the link (once the replica's load report says it reads them).
    await waitFor('frames read', () => r.stats().replicas[0]!.frames);
    const frames = r.stats().frames;
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => r.call(i)));
    expect(many).toEqual(Array.from({ length: 20 }, (_, i) => ({ echo: i })));
    expect(r.stats().frames).toBe(frames + 1);
    // A stream longer than its window: the credits go on the link too.
    const chunks: unknown[] = [];
    for await (const c of r.stream('s')) chunks.push(c);
    expect(chunks).toHaveLength(40);
    expect(chunks[39]).toEqual({ i: 39, p: 's' });
    // A cancel reaches the running handler.
    const abort = new AbortController();
    const waiting = r.call('wait', { signal: abort.signal });
    await waitFor('the call running', () => server.inFlight === 1);
    abort.abort();
    expect((await errorOf(waiting)).code).toBe(ErrorCode.CANCELLED);
    await waitFor('the handler saw its signal', () => cancelled === 1);
    expect(r.stats().direct!.sent).toBeGreaterThan(before + 3);
    expect(r.stats().replySubjects).toBe(0);
  });

  it('sends nothing on a link until it is up, and a replica without a listener is called on NATS', async () => {
    const { server, info } = await replica('d-off', 'r0', { unary: (p) => ({ echo: p }) }, undefined, false);
    expect(server.direct).toBeUndefined();
    const r = router('d-off', [info]);
    for (let i = 0; i < 20; i++) expect(await r.call(i)).toEqual({ echo: i });
    expect(r.stats().direct).toEqual({ up: 0, sent: 0 });
  });

  it('takes a hello only through NATS, from a user allowed to call the group; its key opens one handshake', async () => {
    const { server, info } = await replica('d-trust', 'r0', { unary: (p) => ({ echo: p }) });
    const { port } = server.direct!;
    const handshake = (identity: string, key: Buffer) =>
      new Promise<string>((resolve) => {
        const s = connect({ host: '127.0.0.1', port, ...LINK_TLS, pskCallback: () => ({ psk: key, identity }), checkServerIdentity: () => undefined }, () => {
          s.destroy();
          resolve('connected');
        });
        s.on('error', () => resolve('refused'));
      });
    // No hello: no key the listener knows.
    expect(await handshake(randomBytes(16).toString('hex'), randomBytes(32))).toBe('refused');

    // A caller of another group: nats-server refuses its hello, so the replica never sees the key.
    const inbox = callerInboxPrefix(`other${randomBytes(4).toString('hex')}`);
    const outsider = await connectNats({ ...nats.mint('outsider', callerPermissions('muster', ['d-other'], inbox)), inboxPrefix: inbox }, 'outsider');
    cleanup.push(() => outsider.close());
    const id = randomBytes(16).toString('hex');
    const key = randomBytes(32);
    await expect(outsider.request(info.subject, encode({ v: 1, direct: 'hello', id, key }), { timeout: 1_000 })).rejects.toThrow();
    expect(await handshake(id, key)).toBe('refused');

    // A caller of this group: its hello is answered with where to connect, and its key opens one handshake.
    const inbox2 = callerInboxPrefix(`caller${randomBytes(4).toString('hex')}`);
    const caller = await connectNats({ ...nats.mint('caller', callerPermissions('muster', ['d-trust'], inbox2)), inboxPrefix: inbox2 }, 'caller');
    cleanup.push(() => caller.close());
    const answer = decode<{ direct: { host: string; port: number } }>((await caller.request(info.subject, encode({ v: 1, direct: 'hello', id, key }), { timeout: 2_000 })).data);
    expect(answer.direct).toEqual({ host: '127.0.0.1', port });
    expect(await handshake(id, randomBytes(32))).toBe('refused'); // the id with another key: refused, and the id is spent
    expect(await handshake(id, key)).toBe('refused');
    const id2 = randomBytes(16).toString('hex');
    await caller.request(info.subject, encode({ v: 1, direct: 'hello', id: id2, key }), { timeout: 2_000 });
    expect(await handshake(id2, key)).toBe('connected');
    expect(await handshake(id2, key)).toBe('refused'); // once
  });

  it('a hello on a replica without a listener is answered UNAVAILABLE, and a malformed link frame closes only that link', async () => {
    const { info } = await replica('d-nolisten', 'r0', { unary: (p) => p }, undefined, false);
    const answer = decode<{ ok: boolean; error: { code: string; message: string } }>((await client.request(info.subject, encode({ v: 1, direct: 'hello', id: randomBytes(16).toString('hex'), key: randomBytes(32) }), { timeout: 2_000 })).data);
    expect(answer).toMatchObject({ ok: false, error: { code: ErrorCode.UNAVAILABLE, message: expect.stringMatching(/replica r0: no direct link: it offers no direct path/) } });

    const { server, info: info2 } = await replica('d-garbage', 'r0', { unary: (p) => ({ echo: p }) });
    const id = randomBytes(16).toString('hex');
    const key = randomBytes(32);
    await client.request(info2.subject, encode({ v: 1, direct: 'hello', id, key }), { timeout: 2_000 });
    const closed = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: server.direct!.port, ...LINK_TLS, pskCallback: () => ({ psk: key, identity: id }), checkServerIdentity: () => undefined }, () => {
        s.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1])); // a 4 GiB frame
      });
      s.on('close', () => resolve(true));
      s.on('error', () => undefined);
    });
    expect(closed).toBe(true);
    await waitFor('the listener dropped it', () => server.direct!.links === 0);
    const r = router('d-garbage', [info2]);
    await linked(r, 1);
    expect(await r.call('still')).toEqual({ echo: 'still' });
  });

  it('checks serve()\'s direct option; an address it cannot listen at fails serve() when given, and only warns from MUSTER_DATA_ADDR', async () => {
    const conn = await connectNats(nats.access, 'd-opts');
    cleanup.push(() => conn.close());
    const base = { nats: conn, subject: replicaSubject('muster', 'd-opts', 'r0'), group: 'd-opts', replicaId: 'r0' };
    const handlers = { unary: (p: unknown) => p };
    await expect(serve(handlers, { ...base, direct: { host: '127.0.0.1', prot: 1 } as never })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, details: { field: 'direct' }, message: expect.stringMatching(/serve\(\): direct: .*"prot"/) });
    await expect(serve(handlers, { ...base, direct: { host: '127.0.0.1', port: 70_000 } })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, details: { field: 'direct.port' } });
    // 192.0.2.1 (TEST-NET-1) is no address of this host: binding it fails, nothing is sent anywhere.
    await expect(serve(handlers, { ...base, direct: { host: '192.0.2.1' } })).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, message: expect.stringMatching(/cannot listen for direct links at 192\.0\.2\.1:0/) });
    // Nothing was left subscribed by the failed serve().
    await expect(conn.request(base.subject, encode({ v: 1, id: 'x', deadline: Date.now() + 5_000, stream: false, payload: 1 }), { timeout: 2_000 })).rejects.toThrow(/no responders/i);
    // A template port named `direct` fixes the listener's port (one below the OS's ephemeral range, free when picked).
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    await new Promise<void>((resolve, reject) => {
      const probe = createServer().once('error', reject).listen(port, '127.0.0.1', () => probe.close(() => resolve()));
    });
    const pinned = await serve(handlers, { ...base, subject: replicaSubject('muster', 'd-opts', 'r1'), replicaId: 'r1', env: { MUSTER_DATA_ADDR: '127.0.0.1', MUSTER_PORT_DIRECT: String(port) } });
    cleanup.push(() => pinned.close());
    expect(pinned.direct).toMatchObject({ host: '127.0.0.1', port });
    const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
    const server = await serve(handlers, { ...base, env: { MUSTER_DATA_ADDR: '192.0.2.1' } });
    cleanup.push(() => server.close());
    expect((await warned).message).toMatch(/cannot listen for direct links at 192\.0\.2\.1:0.*serving on NATS only \(set MUSTER_DATA_ADDR/);
    expect(server.direct).toBeUndefined();
  });

  it('answers on NATS what a caller that stops reading its link cannot take, and nothing is lost', async () => {
    const big = new Uint8Array(512 * 1024);
    const { server, info } = await replica('d-slow', 'r0', { unary: () => big }, undefined, { host: '127.0.0.1' });
    const id = randomBytes(16).toString('hex');
    const key = randomBytes(32);
    await client.request(info.subject, encode({ v: 1, direct: 'hello', id, key }), { timeout: 2_000 });
    // Answers to this test's reply subjects, on NATS and on the link.
    const prefix = `_INBOX.dslow${randomBytes(4).toString('hex')}`;
    const onNats = new Set<string>();
    const sub = client.subscribe(`${prefix}.*`, { callback: (_e, m) => void onNats.add(m.subject) });
    cleanup.push(() => sub.unsubscribe());
    await client.flush();
    const socket = await new Promise<ReturnType<typeof connect>>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: server.direct!.port, ...LINK_TLS, pskCallback: () => ({ psk: key, identity: id }), checkServerIdentity: () => undefined }, () => resolve(s));
      s.on('error', reject);
    });
    cleanup.push(() => socket.destroy());
    socket.pause(); // reads nothing: what the replica writes waits in its buffers
    const calls = 64; // 32 MiB of answers: past what one link may hold
    for (let i = 0; i < calls; i++) {
      const reply = Buffer.from(`${prefix}.${i}`);
      const body = encode({ v: 1, id: `slow-${i}`, deadline: Date.now() + 60_000, stream: false, payload: i });
      const frame = Buffer.alloc(9 + reply.length + body.length);
      frame.writeUInt32BE(frame.length - 4, 0);
      frame[4] = 1; // REQUEST
      frame.writeUInt16BE(reply.length, 5);
      reply.copy(frame, 7);
      frame.writeUInt16BE(0, 7 + reply.length);
      frame.set(body, 9 + reply.length);
      socket.write(frame);
    }
    await waitFor('the answers the link could not take, on NATS', () => onNats.size >= calls / 4 && server.inFlight === 0, { timeoutMs: 20_000 });
    // Now read the link: the rest is there, each answer came one way only.
    let onLink = 0;
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const n = buf.readUInt32BE(0);
        if (buf[4] === 2) onLink++; // MESSAGE
        buf = buf.subarray(4 + n);
      }
    });
    socket.resume();
    await waitFor('every answer, one way or the other', () => onLink + onNats.size === calls, { timeoutMs: 20_000 });
    expect(onLink).toBeGreaterThan(0);
  });

  it('a draining replica sends GOAWAY: calls go on to the other one, none fails or runs twice', async () => {
    const runs: Runs = new Map();
    const slow = { unary: async (p: unknown) => (await new Promise((res) => setTimeout(res, 5)), { echo: p }) };
    const a = await replica('d-drain', 'a', slow, runs);
    const b = await replica('d-drain', 'b', slow, runs);
    const r = router('d-drain', [a.info, b.info]);
    await linked(r, 2);
    let stop = false;
    const errors: unknown[] = [];
    let done = 0;
    const load = Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        try {
          await r.call(`${w}-${i}`);
          done++;
        } catch (e) {
          errors.push(e);
        }
      }
    }));
    await waitFor('calls under way', () => done > 50);
    await a.server.drain();
    r.update(membership('d-drain', 2, [b.info]));
    const at = done;
    await waitFor('calls after the drain', () => done > at + 100);
    stop = true;
    await load;
    expect(errors).toEqual([]);
    expect([...runs.values()].filter((n) => n > 1)).toEqual([]);
    expect(r.stats().direct!.up).toBe(1);
  });

  it('an old link is told GOAWAY and set up again; a call in flight across it is answered', async () => {
    let release: (() => void) | undefined;
    const { server, info } = await replica('d-age', 'r0', { unary: (p) => (p === 'long' ? new Promise((res) => (release = () => res('late'))) : { echo: p }) }, undefined, { host: '127.0.0.1', maxLinkAgeMs: 300 });
    const r = router('d-age', [info]);
    await linked(r, 1);
    const long = r.call('long', { timeoutMs: 20_000 });
    await waitFor('the long call running', () => server.inFlight === 1);
    const sent = r.stats().direct!.sent;
    // Past the link's age: GOAWAY; the next calls set up a new link (a new hello) and use it.
    await waitFor('a new link carrying calls', async () => {
      await r.call('x');
      return r.stats().direct!.sent > sent + 5 && server.direct!.links === 2;
    }, { timeoutMs: 15_000 });
    release!();
    expect(await long).toBe('late');
  });

  it('a link that goes dead without a word while the replica lives: found by a ping the replica\'s load reports prove unanswered, its call fails REPLICA_LOST', async () => {
    // A hand-made replica: it answers on NATS (and hellos), reports its load, and its direct
    // listener takes the link, then swallows everything, as a firewall dropping the flow would.
    const subject = replicaSubject('muster', 'd-dead', 'r0');
    const keys = new Map<string, Buffer>();
    const hole = createTlsServer({ ...LINK_TLS, pskCallback: (_s, id) => keys.get(id) ?? null }, (socket) => socket.on('data', () => undefined));
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => hole.close(resolve)));
    const port = (hole.address() as AddressInfo).port;
    const conn = await connectNats(nats.access, 'd-dead');
    cleanup.push(() => conn.close());
    conn.subscribe(subject, { callback: (_e, m) => {
      const body = decode<{ direct?: string; id?: string; key?: Uint8Array }>(m.data);
      if (body.direct === 'hello') {
        keys.set(body.id!, Buffer.from(body.key!));
        m.respond(encode({ v: 1, direct: { host: '127.0.0.1', port } }));
      } else if (m.reply) m.respond(encode({ v: 1, ok: true, result: 'on nats' }));
    } });
    const report = () => conn.publish(loadSubject('muster', 'd-dead'), encode({ v: 1, replicaId: 'r0', inFlight: 0, queued: 0, timeMs: Date.now(), draining: false, incarnation: 'i1' }));
    report();
    const reports = setInterval(report, 100);
    cleanup.push(() => clearInterval(reports));
    await conn.flush();
    const r = router('d-dead', [{ replicaId: 'r0', revision: 'r1', subject }]);
    expect(await r.call('first')).toBe('on nats'); // and the hello goes out
    await waitFor('the link up', () => r.stats().direct!.up === 1 || undefined);
    const t = Date.now();
    const err = await errorOf(r.call('into the hole', { timeoutMs: 60_000 }));
    expect(err.code).toBe(ErrorCode.REPLICA_LOST);
    expect(err.message).toMatch(/closed its direct link while the call was in flight \(it died, or the link broke or went dead\)/);
    expect(Date.now() - t).toBeLessThan(20_000); // about 5 s of silence, a ping, 4 reports' checks; the deadline is 60 s
    expect(r.stats().direct!.up).toBe(0);
  }, 30_000);

  it('a replica busy past the ping, its event loop free or blocked, keeps its link and answers: no false alarm', async () => {
    const { info } = await childReplica('d-busy', 'r0');
    const r = router('d-busy', [info]);
    await linked(r, 1);
    // Free: the ping (5 s of silence) is answered. Blocked 7 s: no report, no verdict; then both come.
    expect(await r.call({ sleep: 6_000 }, { timeoutMs: 30_000 })).toEqual({ slept: 6_000 });
    expect(await r.call({ block: 7_000 }, { timeoutMs: 30_000 })).toEqual({ blocked: 7_000 });
    expect(r.stats()).toMatchObject({ lost: 0, direct: { up: 1 } });
  }, 40_000);

  it('a replica killed mid-call on its link: that call fails REPLICA_LOST at once, not at its deadline', async () => {
    const group = 'd-kill';
    const { child, info } = await childReplica(group, 'victim');
    const r = router(group, [info], { replicaLostAfterMs: 600_000 });
    await linked(r, 1);
    const hung = r.call('hang', { timeoutMs: 60_000 });
    const idem = r.call('hang', { timeoutMs: 60_000, idempotent: true });
    await waitFor('both sent on the link', () => r.stats().replicas.some((x) => x.inFlight === 2));
    const t = Date.now();
    child.kill('SIGKILL');
    const err = await errorOf(hung);
    expect(err.code).toBe(ErrorCode.REPLICA_LOST);
    expect(err.message).toMatch(/closed its direct link while the call was in flight/);
    expect(Date.now() - t).toBeLessThan(10_000); // the sweep is set to 10 minutes here, the deadline to 1
    // The idempotent one was resent: with no other replica it waits, then times out only at its deadline — so just see it is not lost yet.
    expect(r.stats().lost).toBe(2);
    void idem.catch(() => undefined);
  });
});
