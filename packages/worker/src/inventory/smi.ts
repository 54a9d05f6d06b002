/**
 * One nvidia-smi call, shared by inventory discovery (discover.ts) and the
 * resource sampler (resources/gpu.ts): a deadline, stdin closed, and a failed
 * or missing binary told apart from a hung one.
 */
import { execa } from 'execa';
import { ErrorCode, MusterError } from '@muster/common';

/** What a call gave: its output, or why not (`missing`: no such binary, the normal CPU-only node). */
export type SmiRun = { ok: true; stdout: string } | { ok: false; missing: boolean; reason: string };

/** Runs `bin args`; throws a DEADLINE_EXCEEDED MusterError when it does not finish in `timeoutMs`. */
export async function runSmi(bin: string, args: string[], timeoutMs: number): Promise<SmiRun> {
  const r = await execa(bin, args, { timeout: timeoutMs, reject: false, stripFinalNewline: false, stdin: 'ignore' });
  if (r.timedOut) {
    throw new MusterError(ErrorCode.DEADLINE_EXCEEDED, `${bin} ${args.join(' ')} did not finish in ${timeoutMs} ms`, {
      details: { command: [bin, ...args], timeoutMs },
    });
  }
  if (!r.failed) return { ok: true, stdout: r.stdout };
  const missing = r.code === 'ENOENT';
  const said = `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '';
  return { ok: false, missing, reason: missing ? `${bin} not found` : `${bin} exited with ${r.exitCode}: ${said}` };
}
