/**
 * Fixtures for vitest suites (`@muster/testing/vitest`): one call in a
 * `describe` sets a resource up in `beforeAll` and tears it down in
 * `afterAll`, however the tests end.
 *
 *   describe('actors', () => {
 *     let cluster: LocalCluster;
 *     let sdk: Cluster;
 *     useCluster({ workers: 2 }, (fx) => ({ cluster, sdk } = fx));
 *     it('…', async () => { await sdk.actors.create(…); });
 *   });
 *
 *   const nats = useNats();   // nats.client, nats.server.access, …
 *
 * The fixture object's fields can be read once `beforeAll` has run (reading
 * one earlier throws, naming the fixture); `onReady` hands them over to
 * the suite's own variables, so a test reads as plain `sdk.…` and
 * `cluster.…`. A subpath of its own because it imports vitest: the rest of
 * the kit (`createTestCluster()`, chaos, invariants) works under any runner.
 */
import { afterAll, beforeAll } from 'vitest';
import { connectNats, type NatsConnection } from '@muster/common';
import { startNats, tempDir, type ClusterOptions, type LocalCluster, type NatsServer } from '@muster/local';
import type { Cluster } from '@muster/sdk';
import { createTestCluster } from './test-cluster.js';

export interface ClusterFixture {
  /** The test cluster (createTestCluster: temp dir, free ports, fast liveness). */
  readonly cluster: LocalCluster;
  /** An SDK client connected to it. */
  readonly sdk: Cluster;
}

export interface NatsFixture {
  /** A nats-server on a free port, with a temp dir for its config. */
  readonly server: NatsServer;
  /** A client connected to it. */
  readonly client: NatsConnection;
}

/** Fields that throw until `beforeAll` has set them, so a misuse says what it is. */
function lateFields<T extends object>(name: string, keys: Array<keyof T>): { value: T; set(v: T): void } {
  let current: T | undefined;
  const value = {} as T;
  for (const k of keys) {
    Object.defineProperty(value, k, {
      enumerable: true,
      get() {
        if (!current) throw new Error(`${name}.${String(k)} is read before beforeAll set it up (read it inside a test or hook)`);
        return current[k];
      },
    });
  }
  return { value, set: (v) => (current = v) };
}

/**
 * A test cluster and a connected SDK client for the enclosing suite: made in
 * beforeAll, the client closed and the cluster stopped in afterAll.
 */
export function useCluster(opts: ClusterOptions = {}, onReady?: (fx: ClusterFixture) => void): ClusterFixture {
  const fx = lateFields<ClusterFixture>('useCluster()', ['cluster', 'sdk']);
  let cluster: LocalCluster | undefined;
  let sdk: Cluster | undefined;
  beforeAll(async () => {
    cluster = await createTestCluster(opts);
    sdk = await cluster.connect();
    fx.set({ cluster, sdk });
    onReady?.(fx.value);
  });
  afterAll(async () => {
    sdk?.close();
    await cluster?.stop();
  });
  return fx.value;
}

/** A nats-server and a connected client for the enclosing suite, stopped (and its dir removed) in afterAll. */
export function useNats(opts: { clientName?: string } = {}, onReady?: (fx: NatsFixture) => void): NatsFixture {
  const fx = lateFields<NatsFixture>('useNats()', ['server', 'client']);
  let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
  let server: NatsServer | undefined;
  let client: NatsConnection | undefined;
  beforeAll(async () => {
    dir = await tempDir('muster-nats-');
    server = await startNats({ dir: dir.path });
    client = await connectNats(server.access, opts.clientName ?? 'muster-test');
    fx.set({ server, client });
    onReady?.({ server, client });
  });
  afterAll(async () => {
    await client?.close();
    await server?.stop();
    await dir?.remove();
  });
  return fx.value;
}
