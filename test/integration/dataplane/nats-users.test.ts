/**
 * NATS users per role, against a real nats-server in operator mode over TLS
 * (docs/security.md, "NATS: users per role"): the permissions the head mints
 * for a replica of a group and for a caller hold at the server, each refusal
 * with the permission error NATS gives.
 */
import { describe, expect, it } from 'vitest';
import { connectNats, encode, type NatsConnection } from '@muster/common';
import { callerInboxPrefix, callerPermissions, demandSubject, loadSubject, replicaPermissions, replicaSubject, type SubjectPermissions } from '@muster/contracts';
import { waitFor, type NatsServer } from '@muster/testing';
import { useNats } from '@muster/testing/vitest';
import type { Msg } from '@nats-io/transport-node';
import { createConnection } from 'node:net';
import { createCa } from '@muster/common/pki';

let nats: NatsServer;
let admin: NatsConnection;
const opened: NatsConnection[] = [];

useNats({ clientName: 'nats-users-test' }, (fx) => ({ server: nats, client: admin } = fx));

async function as(name: string, perms: SubjectPermissions): Promise<{ nc: NatsConnection; errors: string[] }> {
  const nc = await connectNats(nats.mint(name, perms), name);
  opened.push(nc);
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') errors.push(String((s as { error?: unknown }).error));
  })();
  return { nc, errors };
}

/** Messages `admin` sees on `subject`, and a marker proving its subscription saw everything published before it. */
function watch(subject: string): { got: Msg[]; seenMarker: () => boolean } {
  const got: Msg[] = [];
  admin.subscribe(subject, { callback: (_e, m) => void got.push(m) });
  return { got, seenMarker: () => got.some((m) => new TextDecoder().decode(m.data) === 'marker') };
}

describe('NATS users per role', () => {
  it('a replica of A cannot subscribe to B\'s requests: the subscription is refused with a permission violation', async () => {
    const { nc } = await as('replica a', replicaPermissions('muster', 'a'));
    const sub = nc.subscribe(`muster.rg.b.>`);
    const closed = await sub.closed;
    expect(String(closed)).toMatch(/Permissions Violation for Subscription to "muster\.rg\.b\.>"/);
    // Its own group's subjects it may take.
    const own = nc.subscribe(replicaSubject('muster', 'a', 'r1'), { queue: 'muster' });
    await nc.flush();
    expect(own.isClosed()).toBe(false);
  });

  it('a replica of A cannot publish B\'s load reports (nor anything but its own); its own reach the bus', async () => {
    const { nc, errors } = await as('replica a', replicaPermissions('muster', 'a'));
    const seen = watch('muster.load.*');
    await admin.flush();
    nc.publish(loadSubject('muster', 'b'), encode({ forged: true }));
    nc.publish(loadSubject('muster', 'a'), 'marker');
    await nc.flush();
    await waitFor('its own report arrived', seen.seenMarker, { timeoutMs: 5_000 });
    await waitFor('the refusal', () => errors.some((e) => /Permissions Violation for Publish to "muster\.load\.b"/.test(e)), { timeoutMs: 5_000 });
    expect(seen.got.map((m) => m.subject)).toEqual(['muster.load.a']);
  });

  it('a replica answers a caller\'s request under _INBOX, and publishes nothing else: no request, demand or event subject', async () => {
    const { nc, errors } = await as('replica a', replicaPermissions('muster', 'a'));
    nc.subscribe(replicaSubject('muster', 'a', 'r1'), { callback: (_e, m) => void m.respond('pong') });
    await nc.flush();
    const inbox = callerInboxPrefix('c2');
    const { nc: callerNc } = await as('caller a', callerPermissions('muster', ['a'], inbox));
    const reply = await callerNc.request(replicaSubject('muster', 'a', 'r1'), 'ping', { timeout: 5_000 });
    expect(new TextDecoder().decode(reply.data)).toBe('pong');
    for (const s of [replicaSubject('muster', 'a', 'r2'), demandSubject('muster', 'a'), 'muster.events.node.dead', '_INBOX_x']) nc.publish(s, 'forged');
    await nc.flush();
    await waitFor('four refusals', () => errors.filter((e) => /Permissions Violation for Publish/.test(e)).length === 4, { timeoutMs: 5_000 });
  });

  it('a caller of A cannot publish to B\'s replicas or B\'s demand; A\'s it can', async () => {
    const inbox = callerInboxPrefix('c1');
    const { nc, errors } = await as('caller a', callerPermissions('muster', ['a'], inbox));
    const seen = watch('muster.>');
    await admin.flush();
    nc.publish(replicaSubject('muster', 'b', 'r1'), 'call');
    nc.publish(demandSubject('muster', 'b'), 'demand');
    nc.publish(replicaSubject('muster', 'a', 'r1'), 'marker');
    await nc.flush();
    await waitFor('its call to A arrived', seen.seenMarker, { timeoutMs: 5_000 });
    await waitFor('both refusals', () => errors.filter((e) => /Permissions Violation for Publish to "muster\.(rg|demand)\.b/.test(e)).length === 2, { timeoutMs: 5_000 });
    expect(seen.got.map((m) => m.subject)).toEqual(['muster.rg.a.r1']);
  });

  it('a caller cannot read another caller\'s inbox, nor listen to the whole bus', async () => {
    const { nc } = await as('caller a', callerPermissions('muster', ['a'], callerInboxPrefix('mine')));
    for (const subject of [`${callerInboxPrefix('theirs')}.>`, '_INBOX.>', 'muster.>', '>']) {
      const closed = await nc.subscribe(subject).closed;
      expect(String(closed), subject).toMatch(/Permissions Violation for Subscription/);
    }
    const own = nc.subscribe(`${callerInboxPrefix('mine')}.x`);
    await nc.flush();
    expect(own.isClosed()).toBe(false);
  });

  it('a caller with every right ("*") calls any group but still reads only its own inbox', async () => {
    const { nc, errors } = await as('admin caller', callerPermissions('muster', ['*'], callerInboxPrefix('adm')));
    const seen = watch('muster.rg.>');
    await admin.flush();
    nc.publish(replicaSubject('muster', 'zz', 'r1'), 'marker');
    await nc.flush();
    await waitFor('the call arrived', seen.seenMarker, { timeoutMs: 5_000 });
    expect(errors).toEqual([]);
    expect(String(await nc.subscribe(`${callerInboxPrefix('other')}.>`).closed)).toMatch(/Permissions Violation/);
  });

  it('requires TLS and is trusted only through the cluster CA', async () => {
    const a = nats.mint('x', { pub: ['>'], sub: ['>'] });
    // The server says TLS is required before anything else; a plaintext CONNECT goes nowhere.
    const info = await new Promise<string>((resolve, reject) => {
      const url = new URL(a.servers[0]!);
      const s = createConnection({ host: url.hostname, port: Number(url.port) }, () => undefined);
      s.once('data', (d) => (resolve(d.toString()), s.destroy()));
      s.once('error', reject);
    });
    expect(info).toMatch(/"tls_required":true/);
    // Without the cluster CA (system roots only), or trusting another CA: the certificate does not verify.
    await expect(connectNats({ ...a, caPem: '' }, 'no-ca')).rejects.toThrow(/unable to verify|certificate/);
    const wrong = (await createCa('not-muster')).cert;
    await expect(connectNats({ ...a, caPem: wrong }, 'wrong-ca')).rejects.toThrow(/unable to verify|certificate|signature/);
  });
});
