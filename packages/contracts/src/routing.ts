/**
 * A replica group's routing policy: the names, defaults and bounds that the
 * head's spec check, the membership it publishes, every router
 * (@muster/dataplane prefix-policy.ts) and the gateway's key headers share.
 * docs/replica-groups.md ("Routing policies") says what each does.
 */

/** `p2c`: power of two choices (the default); `prefix`: same key → same replica, with bounded load. */
export const ROUTING_POLICIES = ['p2c', 'prefix'] as const;
export type RoutingPolicyName = (typeof ROUTING_POLICIES)[number];

/** Characters of a prompt (or of the messages) that make a call's key when the caller gives none. */
export const DEFAULT_PREFIX_CHARS = 256;
export const MAX_PREFIX_CHARS = 65_536;

/**
 * The bounded-load factor c: a replica takes a keyed call while its load + 1
 * ≤ ceil(c × (total load + 1) / replicas). 1 is perfect balance (the key's
 * preferred replica is left at the first call above the average); larger
 * values keep more calls on it.
 */
export const DEFAULT_LOAD_FACTOR = 1.25;
export const MAX_LOAD_FACTOR = 100;

/** The longest route key a caller may give (longer keys are refused, naming the field). */
export const MAX_ROUTE_KEY_LENGTH = 4_096;

/**
 * HTTP request headers the gateway reads a call's route key from, in this
 * order: the caller's own key, then a session id. Without either, an OpenAI
 * body's prompt or messages make the key.
 */
export const ROUTE_KEY_HEADER = 'x-muster-route-key';
export const SESSION_ID_HEADER = 'x-session-id';

/** A group's routing as routers apply it (membership carries it, defaults filled). */
export interface RoutingConfig {
  policy: RoutingPolicyName;
  prefixChars: number;
  loadFactor: number;
}

/**
 * The routing a router applies for what a membership carried: absent, an
 * unknown policy (a newer head) or out-of-range numbers fall back to the
 * defaults, so a router never fails on what it was sent.
 */
export function routingConfig(w: { policy?: string; prefixChars?: number; loadFactor?: number } | undefined): RoutingConfig {
  const policy = (ROUTING_POLICIES as readonly string[]).includes(w?.policy ?? '') ? (w!.policy as RoutingPolicyName) : 'p2c';
  const chars = w?.prefixChars;
  const factor = w?.loadFactor;
  return {
    policy,
    prefixChars: Number.isInteger(chars) && chars! > 0 && chars! <= MAX_PREFIX_CHARS ? chars! : DEFAULT_PREFIX_CHARS,
    loadFactor: typeof factor === 'number' && factor >= 1 && factor <= MAX_LOAD_FACTOR ? factor : DEFAULT_LOAD_FACTOR,
  };
}
