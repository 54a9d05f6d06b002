/**
 * The placement group spec as users write it, validated once at the edge.
 *
 * Defaults (a field left out means):
 *   strategy      PACK
 *   bundles[]     cpuMillis 0, memoryBytes 0, gpus 0, gpuMemoryMiB 0 (any), custom {}
 *   topology      []   (no constraint; TP bundles still land inside one NVLink
 *                       island whenever some node has one free — it is the top
 *                       scoring tier — but may be split when none has)
 *   topology[].mode  required
 *   selector      { matchLabels: {} }
 *   tolerations   []   (tolerations[].operator Equal, value "", effect: both)
 *   priority      0    (higher goes first; equal priorities go oldest first)
 *
 * Objects are strict: a misspelt key ("gpu" for "gpus") is an error that
 * names it and what it probably meant (common/strict.ts), not a silently
 * ignored field. Errors read `bundles[0].gpus: Too small: expected number
 * to be >=0` or `bundles[0].gpu: unknown key; did you mean "gpus"?`.
 */
import { z } from 'zod';
import { didYouMeanKeys, issueLines, limitedArray, limitedRecord, limitedString } from '@muster/common';
import type { ValidPgSpec } from './types.js';

const nonNegInt = z.int().nonnegative();

export const BundleSchema = z
  .strictObject({
    cpuMillis: nonNegInt.default(0),
    memoryBytes: nonNegInt.default(0),
    gpus: nonNegInt.max(1024).default(0),
    gpuMemoryMiB: nonNegInt.default(0),
    migProfile: limitedString('refLength').regex(/^\d+g\.\d+gb(\+\w+)?$/, 'expected a MIG profile such as "1g.10gb"').optional(),
    custom: limitedRecord(z.string().min(1), z.number().nonnegative().finite(), 'customResources', 'labelLength').default({}),
  }, didYouMeanKeys)
  .check((ctx) => {
    const b = ctx.value;
    if (b.migProfile !== undefined && b.gpus < 1) {
      ctx.issues.push({ code: 'custom', input: b.gpus, path: ['gpus'], message: 'with migProfile, gpus counts MIG slices and must be at least 1' });
    }
    if (b.migProfile !== undefined && b.gpuMemoryMiB > 0) {
      ctx.issues.push({ code: 'custom', input: b.gpuMemoryMiB, path: ['gpuMemoryMiB'], message: 'not allowed with migProfile (the profile fixes the memory)' });
    }
  });

export const TopologyConstraintSchema = z.strictObject({
  level: z.enum(['gpu-island', 'node', 'nvlink-domain', 'rack', 'zone']),
  mode: z.enum(['required', 'preferred']).default('required'),
}, didYouMeanKeys);

export const TolerationSchema = z.strictObject({
  key: limitedString('labelLength').default(''),
  operator: z.enum(['Equal', 'Exists']).default('Equal'),
  value: limitedString('labelLength').default(''),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule']).optional(),
}, didYouMeanKeys);

export const PlacementGroupSpecSchema = z
  .strictObject({
    name: limitedString('nameLength').min(1),
    strategy: z.enum(['PACK', 'SPREAD', 'STRICT_PACK', 'STRICT_SPREAD']).default('PACK'),
    bundles: limitedArray(BundleSchema, 'bundles').min(1, 'a placement group needs at least one bundle'),
    // Five levels, each at most once (checked below).
    topology: z.array(TopologyConstraintSchema).max(5, 'at most one constraint per level (5 levels)').default([]),
    selector: z.strictObject({ matchLabels: limitedRecord(z.string(), limitedString('labelLength'), 'labels', 'labelLength').default({}) }, didYouMeanKeys).default({ matchLabels: {} }),
    tolerations: limitedArray(TolerationSchema, 'tolerations').default([]),
    priority: z.int().min(-1_000_000).max(1_000_000).default(0),
  }, didYouMeanKeys)
  .check((ctx) => {
    const s = ctx.value;
    const seen = new Set<string>();
    for (const [i, c] of s.topology.entries()) {
      if (seen.has(c.level)) ctx.issues.push({ code: 'custom', input: c, path: ['topology', i, 'level'], message: `level "${c.level}" given twice` });
      seen.add(c.level);
      if (c.level === 'node' && c.mode === 'required' && s.strategy === 'STRICT_SPREAD' && s.bundles.length > 1) {
        ctx.issues.push({ code: 'custom', input: c, path: ['topology', i], message: `level "node" required puts all bundles on one node; STRICT_SPREAD puts each on its own` });
      }
    }
    for (const [i, t] of s.tolerations.entries()) {
      if (t.operator === 'Exists' && t.value !== '') ctx.issues.push({ code: 'custom', input: t.value, path: ['tolerations', i, 'value'], message: 'must be empty with operator Exists' });
      if (t.operator === 'Equal' && t.key === '') ctx.issues.push({ code: 'custom', input: t.key, path: ['tolerations', i, 'key'], message: 'required with operator Equal' });
    }
  });

/** What users write (defaults optional). */
export type PgSpecInput = z.input<typeof PlacementGroupSpecSchema>;

// The schema's output must stay assignable to the core's type.
const _outputMatches = (x: z.output<typeof PlacementGroupSpecSchema>): ValidPgSpec => x;
void _outputMatches;

export type SpecParseResult = { ok: true; spec: ValidPgSpec } | { ok: false; message: string; issues: { path: string; message: string }[] };

/** Validates and applies defaults; never throws. The message names every bad field. */
export function parsePlacementGroupSpec(input: unknown): SpecParseResult {
  const r = PlacementGroupSpecSchema.safeParse(input);
  if (r.success) return { ok: true, spec: r.data };
  const issues = issueLines(r.error.issues);
  return { ok: false, issues, message: `invalid placement group spec: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}` };
}

