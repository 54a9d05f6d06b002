/**
 * The head's state store: the interface, its two implementations, and the
 * one function the head calls to get the configured one.
 */
import { EmbeddedStore, type EmbeddedStoreOptions } from './embedded.js';
import { EtcdStore, type EtcdStoreOptions } from './etcd.js';
import type { StateStore } from './store.js';

export type * from './store.js';
export { rangeAll, readAll, type RangePage } from './paged.js';
export { EmbeddedStore, type EmbeddedStoreOptions } from './embedded.js';
export { EtcdStore, type EtcdStoreOptions } from './etcd.js';
export { LeaseKeeper, type LeaseKeeperOptions } from './etcd-lease-keeper.js';
export { StoreCompactor, type CompactorOptions } from './compactor.js';

export type StoreConfig =
  | ({ kind: 'embedded'; dataDir: string } & EmbeddedStoreOptions)
  | ({ kind: 'etcd'; endpoints: string[]; prefix?: string } & Omit<EtcdStoreOptions, 'endpoints' | 'prefix'>);

/** Opens the embedded store in `dataDir`, or connects to etcd. */
export async function openStore(config: StoreConfig): Promise<StateStore> {
  switch (config.kind) {
    case 'embedded': {
      const { kind: _kind, dataDir, ...opts } = config;
      return EmbeddedStore.open(dataDir, opts);
    }
    case 'etcd': {
      const { kind: _kind, ...opts } = config;
      return EtcdStore.connect(opts);
    }
  }
}
