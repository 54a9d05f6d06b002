/**
 * What the three nvidia-smi parsers share: numbered lines and line-numbered errors.
 *
 * Every parse error is a MusterError(INVALID_ARGUMENT) whose message starts
 * with the command and the 1-based line ("topo -m line 7: ...") and whose
 * `details.line` carries the same number, so a caller (or a test) can point
 * at the offending line without scraping the message.
 */
import { ErrorCode, MusterError } from '@muster/common';

/** Which nvidia-smi output a parser reads; it prefixes every error message. */
export type SmiSource = 'topo -m' | 'query-gpu' | '-L' | 'query-compute-apps';

export interface NumberedLine {
  /** 1-based line number in the text as given. */
  no: number;
  /** The line without its line ending (CR of a CRLF is dropped too). */
  text: string;
}

/**
 * Splits output into numbered lines. Lines starting with `#` are dropped but
 * keep their numbers: nvidia-smi never prints one, and recorded files carry a
 * `# source:` line that should not shift the line numbers in errors.
 */
export function numberedLines(text: string): NumberedLine[] {
  const out: NumberedLine[] = [];
  const raw = text.split('\n');
  // A trailing newline yields one empty last element that is not a line.
  if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop();
  raw.forEach((line, i) => {
    const clean = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (clean.startsWith('#')) return;
    out.push({ no: i + 1, text: clean });
  });
  return out;
}

export function parseError(source: SmiSource, line: number, message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, `${source} line ${line}: ${message}`, { details: { line, source } });
}

/**
 * Output cut short inside its last data line can look valid ("NV18" cut to
 * "NV1", NUMA "12" cut to "1"), so a data line that ends the text without a
 * newline is refused. nvidia-smi always ends its output with one, and the
 * worker reads it with the final newline kept.
 */
export function requireFinalNewline(source: SmiSource, text: string, lastDataLine: number | undefined): void {
  if (lastDataLine === undefined || text.endsWith('\n')) return;
  const lastLineNo = text.split('\n').length;
  if (lastDataLine === lastLineNo) {
    throw parseError(source, lastDataLine, 'output ends inside this line (no final newline): it looks cut short');
  }
}

/** Splits a whitespace-separated line; runs of tabs/spaces are one separator. */
export function tokens(line: string): string[] {
  const t = line.trim();
  return t === '' ? [] : t.split(/\s+/);
}

/** `0-47,96-143`, `0`, `0,3-9,11-17`: the list syntax of CPU and NUMA affinity. */
export const ID_LIST = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

/** A GPU UUID as NVML prints it. */
export const GPU_UUID = /^GPU-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
