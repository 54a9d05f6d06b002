/**
 * The one msgpack configuration of Muster's data plane and stored records.
 * Every encoder/decoder of NATS payloads must use these, so all processes
 * agree on the bytes (records as plain maps, no structure sharing between
 * messages, which would make a message depend on earlier ones).
 */
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

export function decode<T = unknown>(bytes: Uint8Array): T {
  return packr.unpack(bytes) as T;
}

/** A row-major n×n matrix from its flat form, or [] when the length does not fit. */
export function squareMatrix<T>(flat: readonly T[], n: number): T[][] {
  return flat.length === n * n ? Array.from({ length: n }, (_, i) => flat.slice(i * n, (i + 1) * n)) : [];
}
