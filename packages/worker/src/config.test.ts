import { describe, expect, it } from 'vitest';
import { givenFlags } from '@muster/common';
import { tracesUrl } from '@muster/common/tracing';
import { loadWorkerConfig, workerOptions, workerTlsFiles } from './config.js';

const load = (flags: Record<string, unknown>) => loadWorkerConfig({ env: {}, flags: givenFlags(workerOptions, flags) });

describe('the agent\'s TLS options', () => {
  it('without --tls-ca or --insecure: refused, saying how to get a node certificate', () => {
    expect(() => workerTlsFiles(load({ nodeId: 'gpu-7' }))).toThrow(/muster cert node --dir <pki> --node-id gpu-7/);
  });

  it('the CA alone (token auth over TLS), the CA with the node pair, or nothing with --insecure', () => {
    expect(workerTlsFiles(load({ tlsCa: '/p/ca.crt' }))).toEqual({ ca: '/p/ca.crt' });
    expect(workerTlsFiles(load({ tlsCa: '/p/ca.crt', tlsCert: '/p/n.crt', tlsKey: '/p/n.key' }))).toEqual({ ca: '/p/ca.crt', cert: '/p/n.crt', key: '/p/n.key' });
    expect(() => workerTlsFiles(load({ tlsCa: '/p/ca.crt', tlsCert: '/p/n.crt' }))).toThrow(/--tls-cert and --tls-key go together/);
    expect(workerTlsFiles(load({ insecure: true }))).toBeUndefined();
  });
});

describe('the worker\'s --otlp-endpoint', () => {
  it('is the flag alone: with both OTEL variables set, the traces one is used (the specification\'s order)', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom' };
    const config = loadWorkerConfig({ env, flags: givenFlags(workerOptions, {}) });
    expect(config.otlpEndpoint).toBe('');
    expect(tracesUrl(config.otlpEndpoint, env)).toBe('http://traces:4318/custom');
  });
});
