#!/usr/bin/env node
/**
 * Hosts one actor: `node actor-host.js <module> <className>` as rank 0 of a
 * one-replica group. It imports the module, constructs the class with the
 * JSON arguments in MUSTER_ACTOR_ARGS, and serves method calls
 * `{ m: method, a: args }` on the replica's subject. Calls run on this one
 * event loop: synchronous methods one at a time, async ones may interleave
 * at their awaits (as Ray's async actors do).
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode, MusterError } from '@muster/common';
import { SHARD_ENV } from '@muster/contracts';
import { serve } from '@muster/dataplane';
import { ready } from './shard.js';

const [modulePath, className] = process.argv.slice(2);
if (!modulePath || !className) {
  process.stderr.write('usage: actor-host <module> <className>\n');
  process.exit(2);
}
const specifier = isAbsolute(modulePath) || modulePath.startsWith('.') ? pathToFileURL(resolve(modulePath)).href : modulePath;
const mod = (await import(specifier)) as Record<string, unknown>;
const Cls = (mod[className] ?? (className === 'default' ? mod.default : undefined)) as (new (...args: unknown[]) => Record<string, unknown>) | undefined;
if (typeof Cls !== 'function') {
  process.stderr.write(`actor-host: ${modulePath} exports no class "${className}" (it exports: ${Object.keys(mod).join(', ') || 'nothing'})\n`);
  process.exit(2);
}
const args = JSON.parse(process.env[SHARD_ENV.ACTOR_ARGS] ?? '[]') as unknown[];
const actor = new Cls(...args);

const server = await serve({
  unary: async (payload) => {
    const { m, a } = (payload ?? {}) as { m?: unknown; a?: unknown };
    if (typeof m !== 'string' || m.startsWith('_') || m === 'constructor') {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `actor call: "${String(m)}" is not a callable method name`);
    }
    const f = actor[m];
    if (typeof f !== 'function') throw new MusterError(ErrorCode.INVALID_ARGUMENT, `actor ${className} has no method "${m}"`);
    return await (f as (...x: unknown[]) => unknown).apply(actor, Array.isArray(a) ? a : []);
  },
});
ready();
process.on('SIGTERM', () => {
  void server.drain().then(() => process.exit(0));
});
