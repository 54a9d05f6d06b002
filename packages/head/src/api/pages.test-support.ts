import { isMusterError } from '@muster/common';

/** What `fn` was refused with, as "code field message"; an error that is no MusterError is thrown on, and no refusal fails the test. */
export function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isMusterError(e)) return `${e.code} ${String(e.details.field)} ${e.message}`;
    throw e;
  }
  throw new Error('not refused');
}
