/**
 * The HTTP front-door load: wrk (Debian's `wrk` package), the same command
 * against Ray Serve's proxy and against `muster gateway`. Each request is a
 * POST of a small JSON body (post.lua), answered by a no-op handler behind the
 * front door. wrk is not installed by this bench: it says how when missing.
 *
 * wrk's `--latency` output gives the percentiles; its "Non-2xx or 3xx
 * responses" and "Socket errors" lines are counted as errors, so a front door
 * that answers fast with errors does not pass for a fast one.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const postScript = fileURLToPath(new URL('./post.lua', import.meta.url));

export interface WrkResult {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
}

/** Undefined when wrk is on the PATH; otherwise how to get it. */
export function wrkMissing(): string | undefined {
  const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  if (!r.error) return undefined;
  return 'wrk is not installed: `apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`; the http shape needs it';
}

/** wrk's durations ("812.00us", "2.31ms", "1.02s", "1.00m") in milliseconds. */
export function parseDuration(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s.trim());
  if (!m) throw new Error(`wrk: cannot read the duration "${s}"`);
  const scale = { us: 0.001, ms: 1, s: 1_000, m: 60_000 }[m[2] as 'us' | 'ms' | 's' | 'm'];
  return Math.round(Number(m[1]) * scale * 1_000) / 1_000;
}

/** Reads what `wrk --latency` printed. */
export function parseWrk(out: string): WrkResult {
  const pick = (re: RegExp, what: string) => {
    const m = re.exec(out);
    if (!m?.[1]) throw new Error(`wrk: no ${what} in its output:\n${out}`);
    return m[1];
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (socket ? socket.slice(1).reduce((s, x) => s + Number(x), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  return {
    requestsPerSec: Math.round(Number(pick(/Requests\/sec:\s+([\d.]+)/, 'Requests/sec'))),
    p50Ms: parseDuration(pick(/^\s+50%\s+(\S+)/m, '50% latency')),
    p99Ms: parseDuration(pick(/^\s+99%\s+(\S+)/m, '99% latency')),
    requests: Number(pick(/(\d+) requests in/, 'request count')),
    errors,
  };
}

/** wrk with `connections` connections on 2 threads for `seconds`, POSTing a small JSON body to `url`. */
export function runWrk(url: string, opts: { connections: number; seconds: number }): WrkResult {
  const args = ['-t', '2', '-c', String(opts.connections), '-d', `${opts.seconds}s`, '--latency', '--timeout', '10s', '-s', postScript, url];
  const r = spawnSync('wrk', args, { encoding: 'utf8', timeout: (opts.seconds + 30) * 1_000 });
  if (r.error) throw new Error(`wrk: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`wrk exited with ${r.status}: ${r.stderr}`);
  return parseWrk(r.stdout);
}
