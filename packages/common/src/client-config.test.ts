import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clientConfigPath, loadClientContext, readClientConfig, setClientContext } from './client-config.js';

describe('the client config file', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-config-'));
    file = join(dir, 'sub', 'config.yaml');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('is MUSTER_CONFIG, else ~/.muster/config.yaml', () => {
    expect(clientConfigPath({ MUSTER_CONFIG: '/x/c.yaml' })).toBe('/x/c.yaml');
    expect(clientConfigPath({ HOME: '/home/u' })).toMatch(/\.muster\/config\.yaml$/);
  });

  it('a missing file is an empty config; a written one is 0600 and its context current', async () => {
    expect(await readClientConfig(file)).toEqual({ contexts: {} });
    await setClientContext('local', { address: '127.0.0.1:7400', ca: 'pki/ca.crt', cert: '/abs/admin.crt', key: '/abs/admin.key' }, { file });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).not.toMatch(/PRIVATE KEY/);
    const ctx = await loadClientContext(undefined, file);
    // Relative paths are relative to the file's directory.
    expect(ctx).toMatchObject({ name: 'local', address: '127.0.0.1:7400', ca: join(dir, 'sub', 'pki', 'ca.crt'), cert: '/abs/admin.crt' });
    await setClientContext('lab', { address: 'h:7400', insecure: true }, { file, current: false });
    expect((await readClientConfig(file))['current-context']).toBe('local');
    expect((await loadClientContext('lab', file)).insecure).toBe(true);
  });

  it('refuses an unknown key with "did you mean", and names the known contexts for an unknown one', async () => {
    await writeFile(join(dir, 'bad.yaml'), 'contexts:\n  a:\n    address: h:1\n    tokenfile: /t\n');
    await expect(readClientConfig(join(dir, 'bad.yaml'))).rejects.toThrow(/contexts\.a\.tokenfile.*did you mean "tokenFile"/);
    await setClientContext('a', { address: 'h:1' }, { file });
    await expect(loadClientContext('b', file)).rejects.toThrow(/no context "b" \(known: a\)/);
    await writeFile(join(dir, 'none.yaml'), 'contexts: {}\n');
    await expect(loadClientContext(undefined, join(dir, 'none.yaml'))).rejects.toThrow(/no context given and no current-context set/);
  });
});
