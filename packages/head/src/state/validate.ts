/**
 * Input checks shared by both stores, so a bad call fails the same way on
 * either (MUSTER_INVALID_ARGUMENT naming the field) before anything is
 * applied, and a txn is never half-done because its third op was malformed.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { Compare, Op, TxnRequest } from './store.js';

export function invalid(message: string, field: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, message, { details: { field } });
}

export function checkKey(key: unknown, field = 'key'): void {
  if (typeof key !== 'string' || key.length === 0) throw invalid(`${field} must be a non-empty string`, field);
}

export function checkPrefix(prefix: unknown, field = 'prefix'): void {
  if (typeof prefix !== 'string') throw invalid(`${field} must be a string`, field);
}

export function checkValue(value: unknown, field = 'value'): void {
  if (!(value instanceof Uint8Array)) throw invalid(`${field} must be a Uint8Array`, field);
}

/** `limit` as etcd takes it: undefined or 0 = no limit. */
export function checkLimit(limit: unknown): number {
  if (limit === undefined || limit === 0) return 0;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0) {
    throw invalid('limit must be a non-negative integer', 'limit');
  }
  return limit;
}

/** `after` of a paged range: a key under the prefix, or undefined. */
export function checkAfter(after: unknown, prefix: string): string | undefined {
  if (after === undefined) return undefined;
  if (typeof after !== 'string' || !after.startsWith(prefix)) throw invalid(`after must be a key starting with the prefix "${prefix}"`, 'after');
  return after;
}

/** `revision` of a range: a positive integer, or undefined (the current one). */
export function checkRevision(revision: unknown): number | undefined {
  if (revision === undefined) return undefined;
  if (typeof revision !== 'number' || !Number.isInteger(revision) || revision <= 0) throw invalid('revision must be a positive integer', 'revision');
  return revision;
}

/** Lease TTLs are whole seconds, as in etcd: a fraction rounds up. */
export function leaseTtl(ttlSeconds: unknown): number {
  if (typeof ttlSeconds !== 'number' || !Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
    throw invalid(`lease ttl must be a positive number of seconds (got ${String(ttlSeconds)})`, 'ttlSeconds');
  }
  return Math.ceil(ttlSeconds);
}

export function checkFromRevision(rev: unknown): void {
  if (rev !== undefined && (typeof rev !== 'number' || !Number.isInteger(rev) || rev < 1)) {
    throw invalid('fromRevision must be a positive integer', 'fromRevision');
  }
}

const targets = new Set(['value', 'version', 'createRevision', 'modRevision']);
const cmpOps = new Set(['==', '!=', '<', '>']);

function checkCompare(c: Compare, i: number): void {
  const f = `compare[${i}]`;
  checkKey(c.key, `${f}.key`);
  if (!targets.has(c.target)) throw invalid(`${f}.target must be one of ${[...targets].join(', ')}`, `${f}.target`);
  if (!cmpOps.has(c.op)) throw invalid(`${f}.op must be one of ${[...cmpOps].join(' ')}`, `${f}.op`);
  if (c.target === 'value') checkValue(c.value, `${f}.value`);
  else if (typeof c.value !== 'number' || !Number.isInteger(c.value)) {
    throw invalid(`${f}.value must be an integer for target ${c.target}`, `${f}.value`);
  }
}

function checkOps(ops: Op[], branch: string): void {
  if (!Array.isArray(ops)) throw invalid(`${branch} must be an array of ops`, branch);
  ops.forEach((op, i) => {
    const f = `${branch}[${i}]`;
    switch (op?.type) {
      case 'put':
        checkKey(op.key, `${f}.key`);
        checkValue(op.value, `${f}.value`);
        if (op.lease !== undefined && (typeof op.lease !== 'string' || op.lease === '')) {
          throw invalid(`${f}.lease must be a lease id`, `${f}.lease`);
        }
        break;
      case 'delete':
      case 'get':
        checkKey(op.key, `${f}.key`);
        break;
      case 'deletePrefix':
        checkPrefix(op.prefix, `${f}.prefix`);
        break;
      default:
        throw invalid(`${f}.type must be put, delete, deletePrefix or get`, `${f}.type`);
    }
  });
  // etcd refuses a branch that writes one key twice (its writes share one
  // revision, so their order would be ambiguous); so do we, on both stores.
  const puts = new Set<string>();
  for (const op of ops) {
    if (op.type !== 'put') continue;
    const hitByDelete = ops.some(
      (d) => (d.type === 'delete' && d.key === op.key) || (d.type === 'deletePrefix' && op.key.startsWith(d.prefix)),
    );
    if (puts.has(op.key) || hitByDelete) {
      throw invalid(`${branch} writes key ${op.key} more than once (duplicate key in txn)`, branch);
    }
    puts.add(op.key);
  }
}

export function checkTxn(req: TxnRequest): void {
  if (typeof req !== 'object' || req === null) throw invalid('txn request must be an object', 'txn');
  if (!Array.isArray(req.compare)) throw invalid('compare must be an array', 'compare');
  req.compare.forEach(checkCompare);
  checkOps(req.success, 'success');
  if (req.failure !== undefined) checkOps(req.failure, 'failure');
}
