/**
 * The data plane's metrics (@muster/dataplane metrics.ts), recorded through
 * the OpenTelemetry API and served by a process's own endpoint
 * (startMetrics with `global: true`, as the gateway and worker do): calls
 * made and failed through a Router, and the same requests seen by the
 * serve() replica, counted by group, revision and result code; in flight on
 * both sides while a call runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats, ErrorCode, isMusterError, type NatsConnection } from '@muster/common';
import { startMetrics, type Metrics } from '@muster/common/metrics';
import { useNats } from '@muster/testing/vitest';
import { waitFor, type NatsServer } from '@muster/testing';
import { replicaSubject } from '@muster/contracts';
import { Router, serve, type Server } from '@muster/dataplane';
import { sample } from '../prometheus-text.js';

let nats: NatsServer;
let client: NatsConnection;
useNats({ clientName: 'metrics-test' }, (fx) => ({ server: nats, client } = fx));

describe('data-plane metrics', () => {
  let metrics: Metrics;
  let server: Server;
  let conn: NatsConnection;
  let release: (() => void) | undefined;
  let heldSignal: AbortSignal | undefined;
  const scrape = async () => (await fetch(`http://${metrics.address}/metrics`)).text();

  beforeAll(async () => {
    metrics = await startMetrics('test', '127.0.0.1:0', {}, { global: true });
    conn = await connectNats(nats.access, 'metrics-replica');
    const subject = replicaSubject('muster', 'mx', 'r-1');
    server = await serve({
      unary: async (p, ctx) => {
        const ask = p as { fail?: boolean; hold?: boolean };
        if (ask.fail) throw new Error('failed as asked');
        heldSignal = ctx.signal;
        if (ask.hold) await new Promise<void>((r) => (release = r));
        return 'ok';
      },
    }, { nats: conn, subject, group: 'mx', replicaId: 'r-1', revision: 'rev-a', loadIntervalMs: 100 });
  });
  afterAll(async () => {
    await server?.close();
    await conn?.close();
    await metrics?.close();
  });

  it('counts requests by group and code at the router, and by group, revision and code at the replica', async () => {
    const router = new Router(client, undefined, { group: 'mx' });
    try {
      router.update({ group: 'mx', version: 1, replicas: [{ replicaId: 'r-1', revision: 'rev-a', subject: replicaSubject('muster', 'mx', 'r-1') }] });
      for (let i = 0; i < 4; i++) expect(await router.call({})).toBe('ok');
      for (let i = 0; i < 2; i++) await expect(router.call({ fail: true })).rejects.toSatisfy((e) => isMusterError(e) && e.code === ErrorCode.APPLICATION);

      // One call held in its handler: in flight on both sides.
      const held = router.call({ hold: true });
      await waitFor('the held call running', () => release !== undefined || undefined, { timeoutMs: 5_000 });
      const during = await scrape();
      expect(sample(during, 'muster_router_in_flight', { group: 'mx' })).toBe(1);
      expect(sample(during, 'muster_replica_in_flight', { group: 'mx', revision: 'rev-a' })).toBe(1);
      release!();
      await held;

      const text = await scrape();
      // Labelled with the revision of the replica that answered (here every call was answered).
      expect(sample(text, 'muster_router_requests_total', { group: 'mx', revision: 'rev-a', code: 'OK' })).toBe(5);
      expect(sample(text, 'muster_router_requests_total', { group: 'mx', revision: 'rev-a', code: ErrorCode.APPLICATION })).toBe(2);
      expect(sample(text, 'muster_router_request_duration_seconds_count', { group: 'mx', code: 'OK' })).toBe(5);
      expect(sample(text, 'muster_replica_requests_total', { group: 'mx', revision: 'rev-a', code: 'OK' })).toBe(5);
      expect(sample(text, 'muster_replica_requests_total', { group: 'mx', revision: 'rev-a', code: ErrorCode.APPLICATION })).toBe(2);
      expect(sample(text, 'muster_replica_request_duration_seconds_count', { group: 'mx', revision: 'rev-a', code: ErrorCode.APPLICATION })).toBe(2);
      expect(sample(text, 'muster_router_in_flight', { group: 'mx' })).toBe(0);
      expect(sample(text, 'muster_replica_in_flight', { group: 'mx', revision: 'rev-a' })).toBe(0);
      expect(sample(text, 'muster_router_retries_total', { group: 'mx' })).toBe(0);
      expect(text).toMatch(/^muster_router_hedges_total\{group="mx",[^}]*\} 0$/m);
    } finally {
      router.close();
    }
  });

  it('drops a closed router from the gauges, keeps its group on the counters, and has no revision on the router histogram', async () => {
    const router = new Router(client, undefined, { group: 'gone' });
    router.update({ group: 'gone', version: 1, replicas: [{ replicaId: 'r-1', revision: 'rev-a', subject: replicaSubject('muster', 'mx', 'r-1') }] });
    expect(await router.call({})).toBe('ok');
    const live = await scrape();
    expect(live).toMatch(/^muster_router_in_flight\{group="gone",[^}]*\} 0$/m);
    expect(sample(live, 'muster_router_request_duration_seconds_count', { group: 'gone', code: 'OK' })).toBe(1);
    expect(live).not.toMatch(/^muster_router_request_duration_seconds_count\{[^}]*revision=/m);
    router.close();
    // The SDK keeps an async gauge's last point on the provider that saw it;
    // a provider made now shows what the callbacks observe after the close.
    await metrics.close();
    metrics = await startMetrics('test', '127.0.0.1:0', {}, { global: true });
    const other = new Router(client, undefined, { group: 'mx' });
    try {
      other.update({ group: 'mx', version: 1, replicas: [{ replicaId: 'r-1', revision: 'rev-a', subject: replicaSubject('muster', 'mx', 'r-1') }] });
      expect(await other.call({})).toBe('ok'); // makes the instruments on the new provider
      const after = await scrape();
      expect(after).toMatch(/^muster_router_in_flight\{group="mx",[^}]*\} 0$/m);
      expect(after).not.toMatch(/^muster_router_(in_flight|queued)\{group="gone"/m);
      expect(after).toMatch(/^muster_router_hedges_total\{group="gone",[^}]*\} 0$/m);
      expect(after).toMatch(/^muster_router_retries_total\{group="gone",[^}]*\} 0$/m);
    } finally {
      other.close();
    }
  });

  it('shows direct-path links on both sides and the messages sent on them, kept on the counter after the router closes', async () => {
    const subject = replicaSubject('muster', 'mxd', 'r-1');
    const replica = await serve({ unary: () => 'ok' }, { nats: conn, subject, group: 'mxd', replicaId: 'r-1', revision: 'rev-d', loadIntervalMs: 100, direct: { host: '127.0.0.1' } });
    const router = new Router(client, undefined, { group: 'mxd', direct: true });
    try {
      router.update({ group: 'mxd', version: 1, replicas: [{ replicaId: 'r-1', revision: 'rev-d', subject }] });
      await waitFor('the link up', async () => (await router.call({}), router.stats().direct?.up === 1 || undefined), { timeoutMs: 10_000 });
      for (let i = 0; i < 5; i++) await router.call({});
      const text = await scrape();
      expect(sample(text, 'muster_router_direct_links', { group: 'mxd' })).toBe(1);
      expect(sample(text, 'muster_replica_direct_links', { group: 'mxd', revision: 'rev-d' })).toBe(1);
      const sent = sample(text, 'muster_router_direct_messages_total', { group: 'mxd' });
      expect(sent).toBeGreaterThanOrEqual(5);
      expect(sent).toBe(router.stats().direct!.sent);
      router.close();
      await waitFor('the replica sees the link closed', () => replica.direct!.links === 0 || undefined, { timeoutMs: 5_000 });
      // A fresh provider (see above) shows what the callbacks observe now.
      await metrics.close();
      metrics = await startMetrics('test', '127.0.0.1:0', {}, { global: true });
      const other = new Router(client, undefined, { group: 'mx' });
      try {
        other.update({ group: 'mx', version: 1, replicas: [{ replicaId: 'r-1', revision: 'rev-a', subject: replicaSubject('muster', 'mx', 'r-1') }] });
        expect(await other.call({})).toBe('ok');
        const after = await scrape();
        expect(sample(after, 'muster_router_direct_messages_total', { group: 'mxd' })).toBe(sent);
        expect(after).not.toMatch(/^muster_router_direct_links\{group="mxd"/m);
        expect(sample(after, 'muster_replica_direct_links', { group: 'mxd', revision: 'rev-d' })).toBe(0);
      } finally {
        other.close();
      }
    } finally {
      router.close();
      await replica.close();
    }
  });

  it('counts a unary call its caller cancelled as CANCELLED at the replica, though the handler returned', async () => {
    const router = new Router(client, undefined, { group: 'mx' });
    try {
      router.update({ group: 'mx', version: 1, replicas: [{ replicaId: 'r-1', revision: 'rev-a', subject: replicaSubject('muster', 'mx', 'r-1') }] });
      const cancelledBefore = sample(await scrape(), 'muster_replica_requests_total', { group: 'mx', code: ErrorCode.CANCELLED });
      release = undefined;
      const ac = new AbortController();
      const held = router.call({ hold: true }, { signal: ac.signal });
      await waitFor('the held call running', () => release !== undefined || undefined, { timeoutMs: 5_000 });
      ac.abort();
      await expect(held).rejects.toSatisfy((e) => isMusterError(e) && e.code === ErrorCode.CANCELLED);
      await waitFor('the replica saw the cancel', () => heldSignal?.aborted || undefined, { timeoutMs: 5_000 });
      release!(); // the handler returns as if nothing happened
      await waitFor('the cancelled call counted', async () => sample(await scrape(), 'muster_replica_requests_total', { group: 'mx', code: ErrorCode.CANCELLED }) === cancelledBefore + 1 || undefined, { timeoutMs: 5_000 });
    } finally {
      router.close();
    }
  });
});
