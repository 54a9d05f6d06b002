/**
 * host:port parsing with this codebase's error: the grammar is the one of
 * @muster/contracts (address.ts); here an AddressError becomes
 * MUSTER_INVALID_ARGUMENT naming the flag, for the CLIs and servers.
 */
import { AddressError, parseHostPort as parseAddress, type AddressKind, type HostPort } from '@muster/contracts';
import { MusterError, ErrorCode } from './errors.js';

/**
 * Parses "host:port" (or "[v6]:port"); `what` names the flag in errors.
 * Default kind `listen` (empty host = all interfaces, port 0 = any); pass
 * `dial` for an address to connect to.
 */
export function parseHostPort(value: string, what: string, kind: AddressKind = 'listen'): HostPort {
  try {
    return parseAddress(value, what, kind);
  } catch (e) {
    if (!(e instanceof AddressError)) throw e;
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, e.message, { details: { field: what }, cause: e });
  }
}
