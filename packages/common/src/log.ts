/**
 * Structured JSON logs (pino) for every Muster process. One logger per
 * process, named by role; children add context (`log.child({ node })`).
 * Level from MUSTER_LOG_LEVEL (default "info").
 *
 * No secret in a log line: pino's `redact` replaces the value of every field
 * named as a secret (SECRET_FIELDS: token, password, seed, private key,
 * authorization, …) with "[redacted]", at the top of a line and one or two
 * objects down (`{ config: { natsPassword } }`, `{ req: { headers: {
 * authorization } } }`). The list names fields, not a pattern: a plain `key`
 * stays (the head logs store keys under it), and so do paths to secrets
 * (`tokenFile`, `tlsKey`), which are not secrets. Code must still not put a
 * secret into a message string or an error's text; this is the net under it.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

/** Field names whose values never reach a log line. */
export const SECRET_FIELDS = [
  'token',
  'password',
  'natsPassword',
  'pass',
  'seed',
  'accountSeed',
  'nkeySeed',
  'privateKey',
  'secret',
  'apiKey',
  'authorization',
  'cookie',
  'jwt',
] as const;

/** pino redact paths: each field at the top, one and two levels down, and in HTTP headers. */
export const REDACT_PATHS = [
  ...SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]),
  'headers.authorization',
  '*.headers.authorization',
  '*.headers.cookie',
];

export const REDACTED = '[redacted]';

export function createLogger(role: string, opts: { level?: string; destination?: number } = {}): Logger {
  return pino(
    {
      name: role,
      level: opts.level ?? process.env.MUSTER_LOG_LEVEL ?? 'info',
      base: { role, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: REDACTED },
    },
    pino.destination({ dest: opts.destination ?? 1, sync: true }),
  );
}
