import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { givenFlags } from '@muster/common';
import { tracesUrl } from '@muster/common/tracing';
import { headOptions, headTlsFiles, loadHeadConfig } from './config.js';

const load = (flags: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => loadHeadConfig({ env, flags: givenFlags(headOptions, flags) });

describe('the head\'s TLS options', () => {
  it('default to <data-dir>/pki: the cluster CA and the head pair', () => {
    expect(headTlsFiles(load({ dataDir: '/var/lib/muster' }))).toEqual({
      ca: join('/var/lib/muster', 'pki', 'ca.crt'),
      cert: join('/var/lib/muster', 'pki', 'head.crt'),
      key: join('/var/lib/muster', 'pki', 'head.key'),
    });
  });

  it('take the flags over the defaults, and none at all with --insecure (a switch, or MUSTER_INSECURE)', () => {
    expect(headTlsFiles(load({ tlsCa: '/p/ca', tlsCert: '/p/h.crt', tlsKey: '/p/h.key' }))).toEqual({ ca: '/p/ca', cert: '/p/h.crt', key: '/p/h.key' });
    expect(headTlsFiles(load({ insecure: true }))).toBeUndefined();
    expect(headTlsFiles(load({}, { MUSTER_INSECURE: 'true' }))).toBeUndefined();
    expect(() => load({}, { MUSTER_INSECURE: 'maybe' })).toThrow(/MUSTER_INSECURE \(env\)/);
  });

  it('etcd: a client pair needs the etcd CA, and cert and key go together', () => {
    expect(() => load({ etcdCert: '/c', etcdKey: '/k' })).toThrow(/etcdCert and etcdKey go together, and need etcdCa/);
    expect(() => load({ etcdCa: '/ca', etcdCert: '/c' })).toThrow(/etcdCert and etcdKey go together/);
    expect(load({ etcdCa: '/ca', etcdCert: '/c', etcdKey: '/k' }).etcdEndpoints).toEqual(['https://127.0.0.1:2379']);
  });
});

describe('the head\'s --otlp-endpoint', () => {
  it('is the flag alone: with both OTEL variables set, the traces one is used (the specification\'s order)', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom' };
    expect(load({}, env).otlpEndpoint).toBe('');
    expect(tracesUrl(load({}, env).otlpEndpoint, env)).toBe('http://traces:4318/custom');
    expect(tracesUrl(load({ otlpEndpoint: 'http://flag:1' }, env).otlpEndpoint, env)).toBe('http://flag:1/v1/traces');
  });
});

describe('the head\'s --nats-subject-prefix', () => {
  it('takes up to 64 characters of subject tokens and refuses more by name (it bounds a membership snapshot: common/membership-parts.ts)', () => {
    expect(load({ natsSubjectPrefix: `${'a'.repeat(31)}.${'b'.repeat(32)}` }).natsSubjectPrefix).toHaveLength(64);
    expect(() => load({ natsSubjectPrefix: 'a'.repeat(65) })).toThrow(/--nats-subject-prefix \(flag\): .*<=64 characters/);
    expect(() => load({ natsSubjectPrefix: 'a b' })).toThrow(/--nats-subject-prefix/);
  });
});
