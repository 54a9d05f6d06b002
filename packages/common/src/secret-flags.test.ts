/**
 * Secret options given as flags: still taken, but each is warned about,
 * naming the flag and the safer form and never the value; the same option
 * from the environment or a file is not.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig, secretFlagWarnings, type OptionSpec } from './config.js';

const options: OptionSpec[] = [
  { key: 'token', flag: 'token', env: 'X_TOKEN', secret: true, instead: '--token-file or X_TOKEN', description: 'a secret' },
  { key: 'password', flag: 'password', env: 'X_PASSWORD', secret: true, description: 'another' },
  { key: 'name', flag: 'name', env: 'X_NAME', description: 'not a secret' },
];
const schema = z.object({ token: z.string().optional(), password: z.string().optional(), name: z.string().optional() });

describe('secret flags', () => {
  it('warns for each secret flag given, naming the safer form, never the value', () => {
    const flags = { token: 'tok-VALUE', password: 'pw-VALUE', name: 'n' };
    const warnings = secretFlagWarnings(options, flags);
    expect(warnings).toEqual([
      '--token was given on the command line, where every user of this machine can read it (ps, /proc/<pid>/cmdline); use --token-file or X_TOKEN instead',
      '--password was given on the command line, where every user of this machine can read it (ps, /proc/<pid>/cmdline); use X_PASSWORD instead',
    ]);
    expect(warnings.join()).not.toMatch(/VALUE/);
    expect(loadConfig(schema, options, { flags, env: {} }).token).toBe('tok-VALUE'); // still taken
  });

  it('says nothing for secrets from the environment, or for other flags', () => {
    expect(secretFlagWarnings(options, { token: undefined, name: 'n' })).toEqual([]);
    expect(loadConfig(schema, options, { env: { X_TOKEN: 'from-env' } }).token).toBe('from-env');
  });

  it('never puts a secret value into a configuration error', () => {
    const strict = z.object({ token: z.string().min(64), password: z.string().optional(), name: z.string().optional() });
    expect(() => loadConfig(strict, options, { flags: { token: 'short-SECRET' }, env: {} })).toThrow(/^(?!.*short-SECRET).*--token \(flag\)/);
  });
});
