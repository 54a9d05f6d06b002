/**
 * GPU sets are 32-bit masks (bit i = GPU i). Set operations on a node then
 * cost one machine instruction instead of an array walk, which is what makes
 * 1,000-node scans affordable. Nodes with more than 32 GPUs are refused by the
 * state builder (reason `node-unsupported`) rather than handled slowly, and
 * refused at registration (NODE_LIMITS.gpus, @muster/contracts).
 */
import { NODE_LIMITS } from '@muster/contracts';

export const MAX_GPUS_PER_NODE = NODE_LIMITS.gpus;

export function bit(i: number): number {
  return (1 << i) >>> 0;
}

/** Number of set bits (SWAR popcount). */
export function popcount(x: number): number {
  let v = x >>> 0;
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) >>> 0;
}

export function maskOf(indices: readonly number[]): number {
  let m = 0;
  for (const i of indices) m |= 1 << i;
  return m >>> 0;
}

/** Set bits in ascending order. */
export function indicesOf(mask: number): number[] {
  const out: number[] = [];
  let m = mask >>> 0;
  while (m !== 0) {
    const low = m & -m;
    out.push(31 - Math.clz32(low));
    m = (m ^ low) >>> 0;
  }
  return out;
}

export function andNot(a: number, b: number): number {
  return (a & ~b) >>> 0;
}
