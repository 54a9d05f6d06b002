/**
 * A replica group's routing policy (spec field `routing`): checked when the
 * spec is applied; filled with its defaults by contracts' `routingConfig`
 * for the membership that carries it to every router (rg-membership.ts). The routers apply it
 * (@muster/dataplane balancer.ts, prefix-policy.ts); docs/replica-groups.md,
 * "Routing policies", says what each policy does. Changing it does not roll
 * replicas (revisionOf leaves it out): routers take it with the next membership.
 * Pure.
 */
import { didYouMean } from '@muster/common';
import { DEFAULT_LOAD_FACTOR, DEFAULT_PREFIX_CHARS, MAX_LOAD_FACTOR, MAX_PREFIX_CHARS, ROUTING_POLICIES } from '@muster/contracts';
import type { Routing } from '@muster/proto';

/** What is wrong with `r`, one message per field ("routing.<field>: …"); empty when it is valid. */
export function routingProblems(r: Routing | undefined): string[] {
  if (!r) return [];
  const out: string[] = [];
  const policy = r.policy || 'p2c';
  if (!(ROUTING_POLICIES as readonly string[]).includes(policy)) {
    const hint = didYouMean(policy, ROUTING_POLICIES);
    out.push(`routing.policy: "${r.policy}" is not a routing policy (${ROUTING_POLICIES.join(' | ')})${hint ? `; did you mean "${hint}"?` : ''}`);
  }
  if (!(Number.isInteger(r.prefixChars) && r.prefixChars >= 0 && r.prefixChars <= MAX_PREFIX_CHARS)) {
    out.push(`routing.prefixChars: must be a whole number of characters in 0 … ${MAX_PREFIX_CHARS} (0: ${DEFAULT_PREFIX_CHARS}), got ${r.prefixChars}`);
  }
  if (!(Number.isFinite(r.loadFactor) && (r.loadFactor === 0 || (r.loadFactor >= 1 && r.loadFactor <= MAX_LOAD_FACTOR)))) {
    out.push(`routing.loadFactor: must be 0 (the default, ${DEFAULT_LOAD_FACTOR}) or a factor in 1 … ${MAX_LOAD_FACTOR} (1: strict balance), got ${r.loadFactor}`);
  }
  if (policy === 'p2c') {
    for (const f of ['prefixChars', 'loadFactor'] as const) if (r[f]) out.push(`routing.${f}: only the "prefix" policy uses it (policy is "p2c")`);
  }
  return out;
}
