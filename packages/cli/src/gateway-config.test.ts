/** The gateway's tracing options (gateway-config.ts): where the OTLP endpoint comes from, and --trust-traceparent. */
import { describe, expect, it } from 'vitest';
import { tracesUrl } from '@muster/common/tracing';
import { loadGatewayConfig } from './gateway-config.js';

const load = (flags: Record<string, string>, env: NodeJS.ProcessEnv = {}) => loadGatewayConfig({ flags: { noAuth: 'true', ...flags }, env });

describe('the gateway\'s tracing options', () => {
  it('take --otlp-endpoint alone: with both OTEL variables set, the traces one is used (the specification\'s order)', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom' };
    expect(load({}, env).otlpEndpoint).toBe('');
    expect(tracesUrl(load({}, env).otlpEndpoint, env)).toBe('http://traces:4318/custom');
    expect(tracesUrl(load({ otlpEndpoint: 'http://flag:1' }, env).otlpEndpoint, env)).toBe('http://flag:1/v1/traces');
  });

  it('do not trust a client\'s traceparent unless told to (flag or MUSTER_GATEWAY_TRUST_TRACEPARENT)', () => {
    expect(load({}).trustTraceparent).toBe(false);
    expect(load({ trustTraceparent: 'true' }).trustTraceparent).toBe(true);
    expect(load({}, { MUSTER_GATEWAY_TRUST_TRACEPARENT: 'true' }).trustTraceparent).toBe(true);
  });
});

describe('the gateway\'s data-plane path', () => {
  it('takes the direct path unless --nats-only (or MUSTER_GATEWAY_NATS_ONLY) says NATS only; a bad value is refused', () => {
    expect(load({}).natsOnly).toBe(false);
    expect(load({ natsOnly: 'true' }).natsOnly).toBe(true);
    expect(load({}, { MUSTER_GATEWAY_NATS_ONLY: 'true' }).natsOnly).toBe(true);
    expect(() => load({ natsOnly: 'maybe' })).toThrow(/natsOnly|nats-only/);
  });
});
