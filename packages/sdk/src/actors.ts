/**
 * Actors: a TS class instance hosted in its own process on a worker, called
 * by method name (Ray-style).
 *
 *   const counter = await cluster.actors.create('./counter.js', 'Counter', { name: 'c1', args: [10], maxRestarts: 3 });
 *   await counter.call('incr', 5);                      // 15
 *   const same = await cluster.actors.get('c1');        // found by name, from any client
 *
 * An actor is a replica group of one replica (`actor-<name>`) whose rank 0
 * runs `actor-host`: placement, restarts with backoff within `maxRestarts`
 * (state starts over: the constructor runs again), the data plane and its
 * routing are the replica group's. The module must exist at the same path on
 * the worker (or be a package it can import).
 */
import { randomBytes } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, MusterError } from '@muster/common';
import { SHARD_ENV } from '@muster/contracts';
import type { CallOptions } from '@muster/dataplane';
import { checkActorOptions } from './spec-schemas.js';
import type { ActorOptions } from './specs.js';
import type { ReplicaGroup, ReplicaGroups } from './replica-groups.js';

/** The host script, compiled (tests import this file from src/ but processes run dist/). */
const host = fileURLToPath(new URL(import.meta.url.includes('/src/') ? '../dist/actor-host.js' : './actor-host.js', import.meta.url));
const PREFIX = 'actor-';


export class Actor {
  constructor(readonly name: string, private readonly group: ReplicaGroup, private readonly api: Actors) {}

  /** Calls `method(...args)` on the actor; resolves with its (awaited) return value. */
  call(method: string, ...args: unknown[]): Promise<unknown> {
    return this.group.call({ m: method, a: args });
  }

  /** The same with call options (deadline, idempotent retries, hedging). */
  callWith(opts: CallOptions, method: string, ...args: unknown[]): Promise<unknown> {
    return this.group.call({ m: method, a: args }, opts);
  }

  /** Stops the actor and frees its resources. */
  async kill(): Promise<void> {
    this.group.close();
    await this.api.kill(this.name);
  }

  close(): void {
    this.group.close();
  }
}

export class Actors {
  constructor(private readonly groups: ReplicaGroups) {}

  /** Starts an actor; resolves once it serves (its constructor ran). */
  async create(module: string, className: string, options: ActorOptions = {}): Promise<Actor> {
    const opts = checkActorOptions(options);
    const name = opts.name ?? randomBytes(4).toString('hex');
    if (!/^[a-z0-9]([a-z0-9-]{0,33}[a-z0-9])?$/.test(name)) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `actor name "${name}": 1-35 lowercase letters, digits or "-"`, { details: { field: 'name' } });
    }
    if (!module || !className) throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'actors.create(module, className): both are required');
    const existing = await this.groups.list().then((gs) => gs.find((g) => g.name === PREFIX + name));
    if (existing) throw new MusterError(ErrorCode.ALREADY_EXISTS, `an actor named "${name}" exists; get it with actors.get("${name}")`, { details: { field: 'name' } });
    const modulePath = isAbsolute(module) || module.startsWith('.') ? resolve(module) : module;
    const r = opts.resources ?? {};
    const group = await this.groups.apply({
      name: PREFIX + name,
      resources: { gpus: r.gpus ?? 0, cpuMillis: r.cpuMillis ?? 0, memoryBytes: r.memoryBytes ?? 0 },
      template: {
        command: process.execPath,
        args: [host, modulePath, className],
        env: { [SHARD_ENV.ACTOR_ARGS]: JSON.stringify(opts.args ?? []) },
        readiness: { kind: 'sdk' },
      },
      replicas: { min: 1, max: 1, initial: 1 },
      // The restart budget is the gang's; a failed actor stays failed.
      startup: { maxRestarts: opts.maxRestarts ?? 3, backoffInitialMs: 200 },
      maxReplacements: 0,
    });
    // Wait until it serves: the probe method does not exist, so the actor
    // refuses it — and any answer from it proves its constructor ran. A host
    // that cannot start (no such class, a throwing constructor) fails its
    // gang instead: say why rather than wait out the deadline.
    const abort = new AbortController();
    const probe = (await group.routerOf())
      .call({ m: '-muster-probe' }, { timeoutMs: 120_000, signal: abort.signal })
      .catch((e: unknown) => {
        if ((e as { code?: string }).code !== ErrorCode.APPLICATION) throw e;
      });
    const failed = (async () => {
      while (!abort.signal.aborted) {
        await new Promise((r) => setTimeout(r, 300));
        const g = await group.refresh().catch(() => group);
        const r = g.replicas[0];
        if (r?.state === 'failed') {
          throw new MusterError(ErrorCode.FAILED_PRECONDITION, `actor ${name} could not start: ${r.message}`, { details: { replica: r.id } });
        }
      }
    })();
    try {
      await Promise.race([probe, failed]);
    } finally {
      abort.abort();
    }
    return new Actor(name, group, this);
  }

  /** A named actor, from any client. */
  async get(name: string): Promise<Actor> {
    try {
      return new Actor(name, await this.groups.get(PREFIX + name), this);
    } catch (e) {
      if ((e as { code?: string }).code === ErrorCode.NOT_FOUND) throw new MusterError(ErrorCode.NOT_FOUND, `no actor named "${name}"`);
      throw e;
    }
  }

  /** @internal */
  async kill(name: string): Promise<void> {
    await this.groups.delete(PREFIX + name);
  }
}
