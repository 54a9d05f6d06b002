/**
 * An etcd watch as a `Watch`: each etcd watch response is one batch (etcd
 * sends a revision's events together, in revision order); empty progress
 * notifications are dropped. etcd3 re-creates a broken watch stream by
 * itself, resuming after the last revision seen, so a disconnect loses
 * nothing; a resume point etcd has compacted away ends the watch with
 * MUSTER_STORE_COMPACTED.
 */
import { GRPCDeadlineExceededError, type Etcd3, type IEvent, type Range, type Watcher } from 'etcd3';
import { ErrorCode, MusterError } from '@muster/common';
import type { WatchEvent } from './store.js';
import { WatchQueue } from './watch-queue.js';

export interface EtcdWatchSpec {
  client: Etcd3;
  range: Range;
  fromRevision: number | undefined;
  timeoutMs: number;
  toEvent(ev: IEvent): WatchEvent;
  toError(e: unknown, what: string): MusterError;
  onClose(queue: WatchQueue): void;
}

const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms).unref())]);

export async function watchEtcd(spec: EtcdWatchSpec): Promise<WatchQueue> {
  const { client, range } = spec;
  let builder = client.watch().inRange(range).withPreviousKV();
  if (spec.fromRevision !== undefined) {
    // etcd3 resolves a watch once etcd has accepted it and reports a
    // compacted start revision only afterwards; asking first lets watch()
    // itself reject, as the embedded store does.
    await assertNotCompacted(spec, spec.fromRevision);
    builder = builder.startRevision(String(spec.fromRevision));
  }
  const watcher = builder.watcher();
  const queue: WatchQueue = new WatchQueue(async () => {
    spec.onClose(queue);
    await within(watcher.cancel(), spec.timeoutMs);
  });
  watcher.on('data', (res) => queue.push(res.events.map((ev) => spec.toEvent(ev))));
  // explain() only asks etcd why; if even that fails, the watch fails with the original error.
  watcher.on('error', (err) => {
    explain(spec, watcher, err).then((e) => queue.fail(e), () => queue.fail(spec.toError(err, 'watch')));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(spec.toError(new GRPCDeadlineExceededError(`watch not accepted in ${spec.timeoutMs} ms`), 'watch')),
        spec.timeoutMs,
      );
      watcher.once('connected', () => (clearTimeout(timer), resolve()));
      watcher.once('error', (err) => (clearTimeout(timer), reject(spec.toError(err, 'watch'))));
    });
  } catch (e) {
    await queue.close();
    throw e;
  }
  return queue;
}

/** A range read at `revision` fails exactly when etcd has compacted it. */
async function assertNotCompacted(spec: EtcdWatchSpec, revision: number): Promise<void> {
  try {
    await spec.client.kv.range({ key: spec.range.start, range_end: spec.range.end, revision, limit: 1, keys_only: true });
  } catch (e) {
    const err = spec.toError(e, 'watch');
    if (/future revision/.test(err.message)) return; // fine: etcd waits for it
    throw err;
  }
}

/** etcd cancels a watch on a compacted revision with an empty reason; find out if that is why. */
async function explain(spec: EtcdWatchSpec, watcher: Watcher, err: Error): Promise<MusterError> {
  const mapped = spec.toError(err, 'watch');
  if (mapped.code === ErrorCode.STORE_COMPACTED || !/Watcher canceled/.test(err.message)) return mapped;
  const resumeAt = Number(watcher.request.start_revision ?? 0);
  if (resumeAt > 0) {
    try {
      await assertNotCompacted(spec, resumeAt);
    } catch (e) {
      if (e instanceof MusterError) return e;
    }
  }
  return mapped;
}
