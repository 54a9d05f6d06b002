import { describe, expect, it } from 'vitest';
import { connectionOptions } from './connection.js';

const env = { MUSTER_CONFIG: '/cfg.yaml' };

describe('how the CLI finds the cluster: flags > environment > context', () => {
  it('with nothing given, the current context', () => {
    expect(connectionOptions({}, env)).toMatchObject({ context: true, configFile: '/cfg.yaml' });
  });

  it('an environment with an address and a transport needs no context', () => {
    const o = connectionOptions({}, { ...env, MUSTER_ADDRESS: 'h:1', MUSTER_TLS_CA: 'ca', MUSTER_TLS_CERT: 'c', MUSTER_TLS_KEY: 'k' });
    expect(o).toMatchObject({ address: 'h:1', tls: { ca: 'ca', cert: 'c', key: 'k' } });
    expect(o).not.toHaveProperty('context');
  });

  it('flags win over the environment, a transport flag replacing the other transport', () => {
    const e = { ...env, MUSTER_ADDRESS: 'env:1', MUSTER_TLS_CA: 'envca', MUSTER_TLS_CERT: 'envc', MUSTER_TLS_KEY: 'envk', MUSTER_TOKEN: 'secret' };
    const o = connectionOptions({ address: 'flag:1', insecure: true, tokenFile: '/t' }, e);
    expect(o).toMatchObject({ address: 'flag:1', insecure: true, tokenFile: '/t' });
    expect(o).not.toHaveProperty('tls');
    expect(o).not.toHaveProperty('token');
    expect(connectionOptions({ tlsCa: 'flagca' }, { ...e, MUSTER_INSECURE: 'true' })).toMatchObject({ tls: { ca: 'flagca' } });
  });

  it('--context picks a context; what flags and environment give overrides it', () => {
    expect(connectionOptions({ context: 'lab', address: 'x:1' }, env)).toMatchObject({ context: 'lab', address: 'x:1' });
    expect(connectionOptions({}, { ...env, MUSTER_CONTEXT: 'lab' })).toMatchObject({ context: 'lab' });
  });
});
