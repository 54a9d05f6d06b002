/**
 * Structured JSON logs (pino) for every Muster process. One logger per
 * process, named by role; children add context (`log.child({ node })`).
 * Level from MUSTER_LOG_LEVEL (default "info").
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(role: string, opts: { level?: string; destination?: number } = {}): Logger {
  return pino(
    {
      name: role,
      level: opts.level ?? process.env.MUSTER_LOG_LEVEL ?? 'info',
      base: { role, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: opts.destination ?? 1, sync: true }),
  );
}
