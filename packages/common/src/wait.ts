/**
 * The one `waitFor` of the project: waits for a condition with a deadline,
 * no sleep-and-hope. `check` returns a value (done) or undefined/false (not
 * yet); a thrown error counts as "not yet" and is remembered. The error on
 * timeout says what was awaited and the last value or error seen.
 *
 * It lives in common (not in the test kit) so that unit tests inside head,
 * worker and sdk can use it without importing `@muster/testing`, which sits
 * above them; the local-cluster launcher uses it to wait for servers too.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const interval = opts.intervalMs ?? 50;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${opts.timeoutMs ?? 10_000} ms waiting for ${what} (last: ${seen})`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}
