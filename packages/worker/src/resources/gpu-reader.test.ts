/**
 * The long-running GPU reader against a real process: a fake `nvidia-smi`
 * (a shell script in a temp dir) that answers `--query-gpu=… -lms N` the way
 * the real one does — a block of headerless, unitless rows every N ms, the
 * rows recorded on an 8 × H200 machine (test-fixtures/nvidia-smi), GPU 0's
 * utilisation moving so each block can be told apart. It appends its pid to
 * `starts` when it starts, and reads `mode` before each block, so a test can
 * make it garble a block, write an over-long line, exit or hang while it runs.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@muster/common';
import { afterEach, describe, expect, it } from 'vitest';
import { GpuUseReader } from './gpu-reader.js';

const FIXTURE = new URL('../../test-fixtures/nvidia-smi/query-gpu-util-h200-8gpu.txt', import.meta.url);
/** The recorded rows as `--format=csv,noheader,nounits` prints them. */
const ROWS = readFileSync(FIXTURE, 'utf8')
  .split('\n')
  .filter((l) => /^\d+,/.test(l))
  .map((l) => l.replace(/ (MiB|%)/g, ''));

const SCRIPT = `#!/bin/sh
dir=$(dirname "$0")
[ -f "$dir/ignore-term" ] && trap '' TERM
echo $$ >> "$dir/starts"
case "$1 $2 $3" in "--query-gpu=index,uuid,memory.used,memory.total,utilization.gpu --format=csv,noheader,nounits -lms") ;; *) echo "unexpected arguments: $*" >&2; exit 2;; esac
secs=$(awk "BEGIN { print $4 / 1000 }")
n=0
while :; do
  n=$((n + 1))
  mode=$(cat "$dir/mode")
  case "$mode" in
    exit) exit 3;;
    hang) exec sleep 1000;;
  esac
  echo "0, GPU-a44622e3-2296-6285-0a86-84d0f6c67900, 130013, 143771, $((n % 100))"
  case "$mode" in
    garbage) echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver";;
    long) head -c 5000 /dev/zero | tr '\\0' x; echo;;
    *) sed -n 1p "$dir/rows";;
  esac
  tail -n +2 "$dir/rows"
  sleep "$secs"
done
`;

const INTERVAL_MS = 30;
const WAIT = { timeoutMs: 5_000, intervalMs: 5 };

let dir: string | undefined;
let reader: GpuUseReader | undefined;
afterEach(async () => {
  await reader?.stop();
  reader = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A fake nvidia-smi in a fresh temp dir, and a reader over it (not started). */
function setup(opts: { ignoreTerm?: boolean; hangAfterMs?: number } = {}) {
  dir = mkdtempSync(join(tmpdir(), 'muster-smi-loop-'));
  const bin = join(dir, 'nvidia-smi');
  writeFileSync(bin, SCRIPT);
  chmodSync(bin, 0o755);
  writeFileSync(join(dir, 'rows'), `${ROWS.slice(1).join('\n')}\n`);
  writeFileSync(join(dir, 'mode'), 'good');
  if (opts.ignoreTerm) writeFileSync(join(dir, 'ignore-term'), '');
  const warned: string[] = [];
  const told: string[] = [];
  const log = { warn: (o: object) => warned.push((o as { err: string }).err), info: (_o: object, m?: string) => told.push(m ?? '') };
  const d = dir;
  reader = new GpuUseReader({ gpus: ROWS.length, bin, intervalMs: INTERVAL_MS, hangAfterMs: opts.hangAfterMs ?? 5_000, killGraceMs: 200, restartMs: { initial: 20, max: 200 }, log });
  return {
    reader,
    warned,
    told,
    mode: (m: string) => writeFileSync(join(d, 'mode'), m),
    starts: (): number[] => (existsSync(join(d, 'starts')) ? readFileSync(join(d, 'starts'), 'utf8').trim().split('\n').map(Number) : []),
  };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The utilisations of GPU 0 seen, until `count` distinct ones (each one block). */
async function distinctSamples(r: GpuUseReader, count: number): Promise<Set<number>> {
  const seen = new Set<number>();
  await waitFor(`${count} distinct samples`, () => {
    const u = r.latest()?.[0]?.utilization;
    if (u !== undefined) seen.add(u);
    return seen.size >= count;
  }, WAIT);
  return seen;
}

describe('GpuUseReader over a fake nvidia-smi', () => {
  it('samples arrive, parsed as one run\'s output, and update, all from ONE process', async () => {
    const t = setup();
    t.reader.start();
    await distinctSamples(t.reader, 8);
    const gpus = t.reader.latest()!;
    expect(gpus).toHaveLength(8);
    expect(gpus[7]).toEqual({ index: 7, uuid: 'GPU-28780eb0-24d5-1f13-59b8-ae5c23617a72', utilization: 0, memoryUsedBytes: 58071 * 1024 * 1024 });
    expect(t.starts()).toEqual([t.reader.pid]);
    expect(t.warned).toEqual([]);
  });

  it('a child that exits is restarted, sampling resumes, and the streak is logged once however many exits it had', async () => {
    const t = setup();
    t.reader.start();
    await distinctSamples(t.reader, 1);
    const first = t.reader.pid!;
    t.mode('exit');
    await waitFor('two restarts', () => t.starts().length >= 3, WAIT);
    expect(t.reader.latest()).toBeUndefined(); // exited: no sample, not the last one kept
    t.mode('good');
    await waitFor('a sample from a restarted child', () => t.reader.latest() !== undefined && t.reader.pid !== first, WAIT);
    expect(t.warned).toEqual([expect.stringMatching(/exited \(code 3\)/)]);
    expect(t.told).toEqual(['nvidia-smi answers again: GPU metrics are reported']);
    expect(alive(first)).toBe(false);
  });

  it('a child that hangs (no output) goes stale, is killed and restarted', async () => {
    const t = setup({ hangAfterMs: 300 });
    t.reader.start();
    await distinctSamples(t.reader, 1);
    t.mode('hang');
    await waitFor('the sample to go stale', () => t.reader.latest() === undefined, WAIT);
    const hung = t.starts()[0]!;
    t.mode('good');
    await waitFor('a sample from the next child', () => t.reader.latest() !== undefined && t.starts().length >= 2, WAIT);
    expect(t.warned[0]).toMatch(/no output from nvidia-smi for 300 ms/);
    expect(alive(hung)).toBe(false);
  });

  it.each([
    ['garbage in a row', 'garbage', /did not parse: query-gpu line 3/],
    ['an over-long line', 'long', /over-long line/],
  ])('%s: no sample for that block, no crash, the same child goes on', async (_name, mode, warning) => {
    const t = setup();
    t.reader.start();
    await distinctSamples(t.reader, 1);
    t.mode(mode);
    await waitFor('the bad block to be seen and leave no sample', () => t.warned.length > 0 && t.reader.latest() === undefined, WAIT);
    t.mode('good');
    await distinctSamples(t.reader, 2);
    expect(t.starts()).toEqual([t.reader.pid]);
    expect(t.warned).toEqual([expect.stringMatching(warning)]);
  });

  it('stop leaves no process: SIGTERM, and SIGKILL for one that ignores it', async () => {
    for (const ignoreTerm of [false, true]) {
      const t = setup({ ignoreTerm });
      t.reader.start();
      await distinctSamples(t.reader, 1);
      const pid = t.reader.pid!;
      await t.reader.stop();
      expect(alive(pid)).toBe(false);
      expect(t.reader.latest()).toBeUndefined();
      t.reader.start(); // a stopped reader stays stopped
      expect(t.reader.pid).toBeUndefined();
      expect(t.starts()).toEqual([pid]);
      rmSync(dir!, { recursive: true, force: true });
    }
  });

  it('no binary: no sample, logged, no crash, stopped cleanly', async () => {
    const warned: string[] = [];
    reader = new GpuUseReader({ gpus: 8, bin: '/nonexistent/nvidia-smi', intervalMs: INTERVAL_MS, restartMs: { initial: 5, max: 10 }, log: { warn: (o) => warned.push((o as { err: string }).err), info: () => undefined } });
    reader.start();
    await waitFor('the missing binary to be logged', () => warned.length > 0, WAIT);
    expect(reader.latest()).toBeUndefined();
    expect(warned).toEqual(['nvidia-smi not found']);
  });
});
