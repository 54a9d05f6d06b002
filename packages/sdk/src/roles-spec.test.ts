/** A replica group spec with roles is checked strictly by the SDK before it goes on the wire (the head checks the values). */
import { describe, expect, it } from 'vitest';
import { checkReplicaGroupSpec } from './spec-schemas.js';

const template = { command: 'node', args: ['engine.js'], ports: [{ name: 'http' }] };

describe('replica group roles in the SDK', () => {
  it('takes roles with their own template, parallelism and resources', () => {
    const spec = { name: 'pd', httpPort: 'http', roles: [{ name: 'prefill', entry: true, tp: 2, resources: { gpus: 1 }, template }, { name: 'decode', count: 2, template }] };
    expect(checkReplicaGroupSpec(spec)).toBe(spec);
  });

  it('refuses a misspelt key inside a role, with its path and a "did you mean"', () => {
    expect(() => checkReplicaGroupSpec({ name: 'pd', roles: [{ name: 'decode', tempalte: template }] })).toThrow(/roles\[0\].*tempalte.*did you mean "template"/s);
    expect(() => checkReplicaGroupSpec({ name: 'pd', roles: [{ name: 'decode', template, resources: { gpu: 1 } }] })).toThrow(/roles\[0\]\.resources.*gpu.*did you mean "gpus"/s);
  });

  it('refuses more roles than the limit, and a role over the ranks per replica', () => {
    expect(() => checkReplicaGroupSpec({ name: 'pd', roles: Array.from({ length: 17 }, (_, i) => ({ name: `r${i}`, template })) })).toThrow(/roles.*limit is 16/);
    expect(() => checkReplicaGroupSpec({ name: 'pd', roles: [{ name: 'a', tp: 64, pp: 32, template }] })).toThrow(/ranksPerReplica/);
  });
});
