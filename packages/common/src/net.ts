import { MusterError, ErrorCode } from './errors.js';

/** Parses "host:port" (or "[v6]:port"); `what` names the flag in errors. */
export function parseHostPort(value: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${what}: expected host:port, got "${value}"`, {
      details: { field: what },
    });
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
