/** What the data-plane tests ask of a call that must fail: its MusterError (anything else, or a success, fails the test). */
import { isMusterError, type MusterError } from '@muster/common';

export async function errorOf(p: Promise<unknown>): Promise<MusterError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  if (!isMusterError(e)) throw new Error(`expected the call to fail with a MusterError, got ${e === undefined ? 'a success' : String(e)}`);
  return e;
}
