/**
 * The one host:port parser. Before it there were four that disagreed (the
 * common `parseHostPort`, the SDK's `isHostPort` and the head's and worker's
 * config regexes): one took `:7400`, one refused it; one took port 0 or
 * 99999, one did not. Now there are two kinds of address and one grammar:
 *
 *   dial    "host:port" or "[v6]:port"; host non-empty; port 1…65535
 *           (head addresses, leader hints, advertise addresses)
 *   listen  the same, and the host may be empty (":7400" = all interfaces,
 *           0.0.0.0) and the port 0 (the OS picks one)
 *
 * A host never holds whitespace or a comma (a list given where one address
 * was expected is refused, not half-read), nor a colon outside brackets (a
 * bare IPv6 address is ambiguous: write [::1]:7400). Errors name the input
 * and what it was for.
 */

export interface HostPort {
  /** Without brackets for IPv6. */
  host: string;
  port: number;
}

export type AddressKind = 'dial' | 'listen';

/** An address that does not parse; `field` is what the caller said it was for. */
export class AddressError extends Error {
  override readonly name = 'AddressError';
  constructor(
    readonly field: string,
    readonly input: string,
    message: string,
  ) {
    super(message);
  }
}

const GRAMMAR = /^(?:\[([0-9A-Za-z:.%]+)\]|([^\s,:[\]]*)):(\d{1,5})$/;

/** Parses an address; throws AddressError naming `what` and the input. */
export function parseHostPort(value: string, what: string, kind: AddressKind = 'dial'): HostPort {
  const m = GRAMMAR.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  const host = m ? (m[1] ?? m[2] ?? '') : '';
  const minPort = kind === 'listen' ? 0 : 1;
  if (!m || port < minPort || port > 65_535 || (kind === 'dial' && host === '')) {
    const expected = kind === 'listen' ? 'host:port (port 0…65535, empty host = all interfaces)' : 'host:port with a host and a port 1…65535';
    throw new AddressError(what, value, `${what}: expected ${expected}, got "${value}"`);
  }
  return { host: host || '0.0.0.0', port };
}

/** Whether `value` is an address of this kind (for schema refinements). */
export function isHostPort(value: string, kind: AddressKind = 'dial'): boolean {
  try {
    parseHostPort(value, 'address', kind);
    return true;
  } catch {
    return false;
  }
}

/** "host:port", bracketing an IPv6 host. */
export function formatHostPort(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
