/**
 * The dashboard's static files, read once at start into memory: the build of
 * packages/dashboard is a handful of small files, and a fixed map of known
 * paths cannot be walked out of (no path from a request ever reaches the
 * file system). Bounded: at most 64 files and 16 MiB.
 */
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative, sep } from 'node:path';

export interface Asset {
  body: Buffer;
  type: string;
  /** Content-hashed (under assets/): cached for good. */
  immutable: boolean;
}
export type Assets = ReadonlyMap<string, Asset>;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
};
const MAX_FILES = 64;
const MAX_BYTES = 16 * 1024 * 1024;

/** Where the built web app is: packages/dashboard/dist, found through the head's dependency ('' when the package is missing). */
export function defaultAssetsDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@muster/dashboard/package.json')), 'dist');
  } catch {
    return '';
  }
}

/** URL path ("/assets/index-abc.js") → file, for every file of `dir` with a known type; an absent dir gives none. */
export async function loadAssets(dir: string): Promise<Assets> {
  const out = new Map<string, Asset>();
  let entries: string[];
  if (!dir) return out;
  try {
    entries = (await readdir(dir, { recursive: true })).map(String);
  } catch {
    return out;
  }
  let bytes = 0;
  for (const name of entries.sort()) {
    const type = TYPES[extname(name)];
    if (!type || out.size >= MAX_FILES) continue;
    const body = await readFile(join(dir, name)).catch(() => undefined);
    if (!body || (bytes += body.length) > MAX_BYTES) continue;
    const path = `/${relative(dir, join(dir, name)).split(sep).join('/')}`;
    out.set(path, { body, type, immutable: path.startsWith('/assets/') });
  }
  return out;
}
