/**
 * OpenAI calls that overflow: a saturated group's router may send a call to
 * its overflow group (docs/replica-groups.md, "Overflow"), which serves other
 * model names — model names are unique across groups, and an engine such as
 * vLLM answers 404 to a model it does not serve. So the call's payload, as
 * the overflow group gets it, names that group's first model instead
 * (`CallOptions.overflowPayload`, applied by the router only when the call
 * does overflow). An overflow group that lists no model gets the request as
 * it came. The body is the one already parsed for routing: an HTTP group's
 * raw bytes are written again from it, a `serve()` group's parsed body
 * replaced.
 */
import type { GroupDirectory } from './gateway-groups.js';

/** `overflowPayload` for an OpenAI request whose parsed JSON body is `body`. */
export function renameModel(groups: GroupDirectory, body: Record<string, unknown>): (group: string, payload: unknown) => unknown {
  return (group, payload) => {
    const model = groups.listed(group)?.models[0];
    if (model === undefined || model === body.model || !payload || typeof payload !== 'object') return payload;
    const p = payload as Record<string, unknown>;
    const renamed = { ...body, model };
    return { ...p, body: p.body instanceof Uint8Array ? Buffer.from(JSON.stringify(renamed)) : renamed };
  };
}
