/**
 * Layered configuration, validated once at the edge:
 *
 *   schema defaults  <  config file (YAML or JSON)  <  MUSTER_* env  <  flags
 *
 * Each role declares its options once (`OptionSpec`: key, flag, env var,
 * parser); `loadConfig` merges the layers and validates the result with the
 * role's zod schema, so a bad value from any layer is reported with the layer
 * and the option's name ("--dead-after-ms (flag): must be ≥ 100").
 *
 * Secrets (`secret: true`: a token, a password) may still be given as flags,
 * so scripts keep working, but argv is readable by every user of the machine
 * (`ps`, /proc/<pid>/cmdline): `secretFlagWarnings` says which were, and each
 * process logs that warning at start with the file or env form to use.
 * Nothing here ever puts an option's value into an error message.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ErrorCode, MusterError } from './errors.js';
import { didYouMean } from './strict.js';

export interface OptionSpec {
  /** Key in the config object (and in the config file). */
  key: string;
  /** Long flag name without dashes ("dead-after-ms"). */
  flag: string;
  /** Environment variable ("MUSTER_DEAD_AFTER_MS"); none when the option reads its variables itself (--otlp-endpoint). */
  env?: string;
  /** Turns a string from env or flag into the config value. */
  parse?: (raw: string) => unknown;
  description: string;
  /** A secret: never to be passed on the command line (a warning names the file or env form instead). */
  secret?: boolean;
  /** For a secret: what to use instead of the flag ("--token-file or MUSTER_TOKEN"). */
  instead?: string;
  /** A switch: the flag takes no value (`--insecure`); its env var still takes true/false. */
  boolean?: true;
}

/** Commander's spelling of an option: `--name <value>`, or `--name` for a switch. */
export function flagSpelling(o: OptionSpec): string {
  return o.boolean ? `--${o.flag}` : `--${o.flag} <value>`;
}

/** An option's help line: its description and, when it has one, its variable. */
export function optionHelp(o: OptionSpec): string {
  return o.env ? `${o.description} [env ${o.env}]` : o.description;
}

/** The flags a user gave, from commander's parsed options, as loadConfig takes them (a switch given is "true"). */
export function givenFlags(options: OptionSpec[], parsed: Record<string, unknown>): Record<string, string | undefined> {
  return Object.fromEntries(options.map((o) => {
    const v = parsed[o.key];
    return [o.key, v === true ? 'true' : typeof v === 'string' ? v : undefined];
  }));
}

export const parseList = (raw: string): string[] => raw.split(',').map((s) => s.trim()).filter(Boolean);
export const parseNumber = (raw: string): unknown => (raw.trim() === '' ? raw : Number(raw));
export const parseBool = (raw: string): unknown => (/^(1|true|yes|on)$/i.test(raw) ? true : /^(0|false|no|off)$/i.test(raw) ? false : raw);
/** "k=v,k2=v2" → { k: "v", k2: "v2" } */
export const parseMap = (raw: string): Record<string, string> =>
  Object.fromEntries(parseList(raw).map((kv) => {
    const i = kv.indexOf('=');
    return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
  }));

export interface ConfigSources {
  /** Path of a YAML/JSON file, or undefined. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Flag values the user actually gave, keyed by config key. */
  flags?: Record<string, string | undefined>;
}

export function loadConfig<S extends z.ZodType>(schema: S, options: OptionSpec[], sources: ConfigSources): z.infer<S> {
  const merged: Record<string, unknown> = {};
  const origin: Record<string, string> = {};
  if (sources.file) {
    let text: string;
    try {
      text = readFileSync(sources.file, 'utf8');
    } catch (e) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `config file ${sources.file}: ${(e as Error).message}`, { cause: e });
    }
    let data: unknown;
    try {
      data = parseYaml(text);
    } catch (e) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `config file ${sources.file}: ${(e as Error).message}`, { cause: e });
    }
    if (data !== null && data !== undefined) {
      if (typeof data !== 'object' || Array.isArray(data)) {
        throw new MusterError(ErrorCode.INVALID_ARGUMENT, `config file ${sources.file}: expected a mapping of options`);
      }
      const known = new Set(options.map((o) => o.key));
      for (const [k, v] of Object.entries(data)) {
        if (!known.has(k)) {
          const hint = didYouMean(k, [...known]);
          throw new MusterError(ErrorCode.INVALID_ARGUMENT, `config file ${sources.file}: unknown option "${k}" (${hint ? `did you mean "${hint}"? ` : ''}known: ${[...known].join(', ')})`, { details: { field: k } });
        }
        merged[k] = v;
        origin[k] = `${k} (config file ${sources.file})`;
      }
    }
  }
  const env = sources.env ?? process.env;
  for (const o of options) {
    const raw = o.env === undefined ? undefined : env[o.env];
    if (raw !== undefined && raw !== '') {
      merged[o.key] = o.parse ? o.parse(raw) : raw;
      origin[o.key] = `${o.env} (env)`;
    }
    const flag = sources.flags?.[o.key];
    if (flag !== undefined) {
      merged[o.key] = o.parse ? o.parse(flag) : flag;
      origin[o.key] = `--${o.flag} (flag)`;
    }
  }
  const result = schema.safeParse(merged);
  if (!result.success) {
    const msgs = result.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      const where = origin[key] ?? `${key} (default)`;
      const sub = issue.path.length > 1 ? `[${issue.path.slice(1).join('.')}]` : '';
      return `${where}${sub}: ${issue.message}`;
    });
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid configuration: ${msgs.join('; ')}`, {
      details: { fields: result.error.issues.map((i) => i.path.join('.')) },
    });
  }
  return result.data;
}

/**
 * One warning per secret option given as a flag: argv is visible to every
 * user of the machine. The warning names the flag and the safer form, never
 * the value.
 */
export function secretFlagWarnings(options: readonly OptionSpec[], flags: Record<string, string | undefined>): string[] {
  return options
    .filter((o) => o.secret && flags[o.key] !== undefined)
    .map((o) => `--${o.flag} was given on the command line, where every user of this machine can read it (ps, /proc/<pid>/cmdline); use ${o.instead ?? o.env ?? 'a config file'} instead`);
}
