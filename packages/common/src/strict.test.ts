/** "Did you mean": close keys are suggested, far ones are not, and unknown keys are refused with their path. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { didYouMean, didYouMeanKeys, editDistance, formatIssues } from './strict.js';

describe('didYouMean', () => {
  it.each([
    ['resource', ['tp', 'resources', 'replicas'], 'resources'],
    ['readines', ['readiness', 'liveness'], 'readiness'],
    ['taget', ['metric', 'target'], 'target'],
    ['GPUS', ['gpus', 'cpuMillis'], 'gpus'],
    ['gpu', ['gpus', 'cpuMillis'], 'gpus'],
    ['replica', ['replicas', 'resources'], 'replicas'],
    ['colour', ['name', 'tp'], undefined],
    ['pq', ['tp', 'pp'], undefined], // two edits turn any two-letter key into any other: no guess
  ])('%s among %j → %s', (key, allowed, want) => {
    expect(didYouMean(key, allowed)).toBe(want);
  });

  it('counts edits', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('same', 'same')).toBe(0);
  });
});

describe('strict objects with didYouMeanKeys', () => {
  const schema = z.strictObject(
    { name: z.string(), autoscaling: z.strictObject({ target: z.number().optional(), metric: z.string().optional() }, didYouMeanKeys).optional() },
    didYouMeanKeys,
  );

  it('refuses an unknown key at any depth with its path and a suggestion', () => {
    const r = schema.safeParse({ name: 'x', autoscaling: { taget: 5 } });
    expect(r.success).toBe(false);
    expect(formatIssues(r.error!.issues)).toBe('autoscaling.taget: unknown key; did you mean "target"?');
  });

  it('lists what is allowed when nothing is close, and every key when several are unknown', () => {
    const far = schema.safeParse({ name: 'x', colour: 'red' });
    expect(formatIssues(far.error!.issues)).toBe('colour: unknown key (allowed: name, autoscaling)');
    const many = schema.safeParse({ nme: 'x', colour: 'red' });
    expect(formatIssues(many.error!.issues)).toMatch(/unknown keys "nme" \(did you mean "name"\?\), "colour"; allowed: name, autoscaling/);
  });

  it('keeps other messages as zod writes them', () => {
    expect(formatIssues(schema.safeParse({ name: 1 }).error!.issues)).toMatch(/^name: /);
  });
});
