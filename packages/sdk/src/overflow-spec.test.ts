/** A replica group's `overflow` as the SDK checks it before the wire: its keys, strictly (values are the head's). */
import { describe, expect, it } from 'vitest';
import { checkReplicaGroupSpec } from './spec-schemas.js';

describe('overflow in the SDK spec', () => {
  it('accepts a group and its rules', () => {
    const spec = { name: 'big', overflow: { group: 'small', queuePerReplicaAbove: 4, onBackPressure: true } };
    expect(checkReplicaGroupSpec(spec).overflow).toEqual(spec.overflow);
  });

  it('refuses a misspelt key by path, with the key it meant', () => {
    expect(() => checkReplicaGroupSpec({ name: 'big', overflow: { group: 'small', onBackPresure: true } } as never)).toThrow(/overflow.*onBackPresure.*onBackPressure/);
    expect(() => checkReplicaGroupSpec({ name: 'big', overflow: { group: 'small', queuePerReplicaAbove: '4' } } as never)).toThrow(/overflow\.queuePerReplicaAbove/);
  });
});
