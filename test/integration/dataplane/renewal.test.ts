/**
 * A caller's NATS user expires; the SDK's DataPlaneAccess asks again before
 * it does, and the connection presents the new JWT when the server cuts the
 * old one: the connection comes back by itself and keeps its inbox (the
 * renewal keeps the inbox prefix). Real nats-server, JWTs of 6 s.
 */
import { describe, expect, it } from 'vitest';
import { callerInboxPrefix, callerPermissions, replicaSubject } from '@muster/contracts';
import { DataPlaneAccess, renewInMs } from '@muster/sdk';
import { waitFor, type NatsServer } from '@muster/testing';
import { useNats } from '@muster/testing/vitest';
import type { NatsConnection } from '@muster/common';

let nats: NatsServer;
let admin: NatsConnection;
useNats({ clientName: 'renewal-test' }, (fx) => ({ server: nats, client: admin } = fx));

describe('DataPlaneAccess', () => {
  it('asks again at three quarters of the life left, at most an hour before the end, never for a JWT without expiry', () => {
    expect(renewInMs(0, 1_000)).toBeUndefined();
    expect(renewInMs(1_000 + 4_000, 1_000)).toBe(3_000);
    expect(renewInMs(1_000 + 24 * 3_600_000, 1_000)).toBe(23 * 3_600_000);
    expect(renewInMs(500, 1_000)).toBe(0);
  });

  it('keeps a connection through the expiry of its first JWT, with the same inbox', async () => {
    const inbox = callerInboxPrefix('renewing');
    const asked: string[] = [];
    const access = new DataPlaneAccess(async (renewInboxPrefix) => {
      asked.push(renewInboxPrefix);
      return { ...nats.mint('caller', callerPermissions('muster', ['a'], renewInboxPrefix || inbox), 6_000), groups: ['a'] };
    });
    const dp = await access.connect('renewal-test');
    try {
      expect(dp.inboxPrefix).toBe(inbox);
      const subject = replicaSubject('muster', 'a', 'r1');
      admin.subscribe(subject, { callback: (_e, m) => void m.respond('pong') });
      await admin.flush();
      let reconnects = 0;
      void (async () => {
        for await (const s of dp.conn.status()) if (s.type === 'reconnect') reconnects++;
      })();
      expect(new TextDecoder().decode((await dp.conn.request(subject, 'ping', { timeout: 2_000 })).data)).toBe('pong');
      // The first JWT ends 6 s after it was minted (renewed at 4.5 s): the server cuts the connection, which comes back with the renewed one.
      await waitFor('the server cut the expired user and the client came back', () => reconnects >= 1, { timeoutMs: 20_000 });
      expect(asked.length).toBeGreaterThanOrEqual(2);
      expect(asked.slice(1).every((p) => p === inbox)).toBe(true);
      expect(new TextDecoder().decode((await dp.conn.request(subject, 'ping', { timeout: 2_000 })).data)).toBe('pong');
    } finally {
      access.close();
      await dp.conn.close();
    }
  });
});
