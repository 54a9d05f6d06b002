/**
 * The process's one router per replica group (default options), counted:
 * every handle of the group calls through it (`ReplicaGroup.routerOf()`
 * without options), and so do the calls other groups overflow to it. Made by
 * the first user, closed when the last lets go. A failed creation is
 * forgotten, so the next user tries again. Two groups that overflow to each
 * other hold each other's router until the data plane closes (one router per
 * group at most).
 *
 * A user holds the Router itself, so its `close()` would end every other
 * user's calls (a closed router refuses calls, and it would still be handed
 * out). While shared it refuses: MUSTER_FAILED_PRECONDITION, naming what does
 * close what. Only that one method of the instance is replaced; nothing is
 * added to a call's path.
 */
import type { Router } from '@muster/dataplane';
import { ErrorCode, MusterError } from '@muster/common';

/** A shared router; `close` is the one that closes it (the router's own refuses). */
interface Entry {
  router: Promise<Router>;
  refs: number;
  close(): void;
}

export class SharedRouters {
  private readonly byGroup = new Map<string, Entry>();

  /** `open` makes a router of a group (ReplicaGroups.router). */
  constructor(private readonly open: (group: string) => Promise<Router>) {}

  /** The shared router of `group`, opened if none is; `release` lets go of this use of it (once; later calls do nothing). */
  take(group: string): { router: Promise<Router>; release(): void } {
    let found = this.byGroup.get(group);
    if (!found) {
      const made = shareable(group, this.open(group));
      found = made;
      this.byGroup.set(group, made);
      made.router.catch(() => {
        if (this.byGroup.get(group) === made) this.byGroup.delete(group);
      });
    }
    const entry = found;
    entry.refs++;
    let released = false;
    return {
      router: entry.router,
      release: () => {
        if (released) return;
        released = true;
        if (--entry.refs > 0) return;
        if (this.byGroup.get(group) === entry) this.byGroup.delete(group);
        entry.close();
      },
    };
  }

  /** Closes every shared router, whoever still uses it (the data plane is closing). */
  closeAll(): void {
    for (const e of this.byGroup.values()) e.close();
    this.byGroup.clear();
  }
}

/**
 * `opening` with its `close()` refusing until the entry's `close` runs; after
 * that, the router's own `close()` is the no-op it is on any closed router.
 */
function shareable(group: string, opening: Promise<Router>): Entry {
  let closed = false;
  let closeRouter: (() => void) | undefined;
  const router = opening.then((r) => {
    closeRouter = r.close.bind(r);
    r.close = () => {
      if (closed) return;
      throw new MusterError(
        ErrorCode.FAILED_PRECONDITION,
        `Router.close(): this is the process's shared router of replica group "${group}": every handle of the group, and every group that overflows to it, calls through it, so closing it is refused. ` +
          "handle.close() lets go of this handle's use of it (the router closes when its last user lets go); handle.routerOf(options) gives a handle a router of its own, which close() closes",
        { details: { group } },
      );
    };
    return r;
  });
  return {
    router,
    refs: 0,
    close: () => {
      closed = true;
      // Open: closed at once, so the last user's release has ended its calls when it returns.
      if (closeRouter) closeRouter();
      else void router.then(() => closeRouter?.(), () => undefined);
    },
  };
}
