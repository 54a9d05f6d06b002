/**
 * A shard template — what every rank of a gang, or of one of its roles, runs
 * — validated at the edge: its zod schema (strict, bounded), the checks zod
 * cannot make (ports named twice, probes naming no port, the execve size),
 * and the conversions from and to the wire. Pure; shared by gang-spec.ts and
 * gang-roles.ts (a gang's template and each role's are the same shape).
 */
import { z } from 'zod';
import { didYouMeanKeys, limitMessage, limitedArray, limitedRecord, limitedString } from '@muster/common';
import { SPEC_LIMITS, templateBytes } from '@muster/contracts';
import type { Probe, ShardTemplate } from '@muster/proto';

const PORT_NAME = /^[a-z][a-z0-9_]{0,30}$/;
const probeSchema = z
  .strictObject({
    kind: z.enum(['http', 'tcp', 'exec', 'sdk']),
    port: limitedString('refLength').default(''),
    path: limitedString('probePathLength').default('/'),
    command: limitedArray(limitedString('argLength'), 'args').default([]),
    periodMs: z.int().min(0).max(3_600_000).default(0),
    timeoutMs: z.int().min(0).max(3_600_000).default(0),
    failureThreshold: z.int().min(0).max(1000).default(0),
  }, didYouMeanKeys)
  .check((ctx) => {
    const p = ctx.value;
    if ((p.kind === 'http' || p.kind === 'tcp') && p.port === '') ctx.issues.push({ code: 'custom', input: p, path: ['port'], message: `a ${p.kind} probe needs a port (a port name of the template, or a number)` });
    if (p.kind === 'exec' && p.command.length === 0) ctx.issues.push({ code: 'custom', input: p, path: ['command'], message: 'an exec probe needs a command' });
  });

/** A shard template (a gang's, or one role's); templateIssues checks what zod cannot. */
export const shardTemplateSchema = z.strictObject({
  command: limitedString('commandLength').min(1, 'the command to run for every rank'),
  args: limitedArray(limitedString('argLength'), 'args').default([]),
  env: limitedRecord(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'not a valid environment variable name'), limitedString('envValueLength'), 'envEntries', 'envKeyLength').default({}),
  cwd: limitedString('cwdLength').default(''),
  ports: limitedArray(z.strictObject({ name: z.string().regex(PORT_NAME, 'lowercase letters, digits and _'), port: z.int().min(0).max(65535).default(0) }, didYouMeanKeys), 'ports').default([]),
  readiness: probeSchema.optional(),
  liveness: probeSchema.optional(),
}, didYouMeanKeys);
export type ValidShardTemplate = z.output<typeof shardTemplateSchema>;

/** A template's size, port names and probe ports, as issues under `path`. */
export function templateIssues(t: ValidShardTemplate, path: (string | number)[]): { code: 'custom'; input: unknown; path: (string | number)[]; message: string }[] {
  const issues: { code: 'custom'; input: unknown; path: (string | number)[]; message: string }[] = [];
  const bytes = templateBytes(t);
  if (bytes > SPEC_LIMITS.templateBytes) issues.push({ code: 'custom', input: bytes, path, message: `command, args and env take ${limitMessage('templateBytes', bytes, 'bytes')}` });
  const names = new Set<string>();
  const fixed = new Set<number>();
  t.ports.forEach((p, i) => {
    if (names.has(p.name)) issues.push({ code: 'custom', input: p, path: [...path, 'ports', i, 'name'], message: `port name "${p.name}" used twice` });
    if (p.port && fixed.has(p.port)) issues.push({ code: 'custom', input: p, path: [...path, 'ports', i, 'port'], message: `port ${p.port} clashes with another port of the template` });
    names.add(p.name);
    if (p.port) fixed.add(p.port);
  });
  for (const key of ['readiness', 'liveness'] as const) {
    const port = t[key]?.port;
    if (port && !names.has(port) && !/^\d{1,5}$/.test(port)) issues.push({ code: 'custom', input: port, path: [...path, key, 'port'], message: `"${port}" is neither a port name of the template (${[...names].join(', ') || 'none'}) nor a number` });
  }
  return issues;
}

/** A wire template as the schema's input (a probe without a kind is no probe). */
export function templateInput(t: ShardTemplate | undefined) {
  const probe = (p: Probe | undefined) => (p && p.kind ? { kind: p.kind, port: p.port, path: p.path || '/', command: p.command, periodMs: p.periodMs, timeoutMs: p.timeoutMs, failureThreshold: p.failureThreshold } : undefined);
  return {
    command: t?.command ?? '',
    args: t?.args ?? [],
    env: t?.env ?? {},
    cwd: t?.cwd ?? '',
    ports: t?.ports ?? [],
    ...(probe(t?.readiness) ? { readiness: probe(t?.readiness) } : {}),
    ...(probe(t?.liveness) ? { liveness: probe(t?.liveness) } : {}),
  };
}

/** A valid template back on the wire. */
export function wireTemplate(t: ValidShardTemplate): ShardTemplate {
  const probe = (p: ValidShardTemplate['readiness']): Probe | undefined => (p ? { ...p } : undefined);
  return { ...t, readiness: probe(t.readiness), liveness: probe(t.liveness) };
}

