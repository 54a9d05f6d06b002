/**
 * One set of TLS channel credentials per set of files, shared by every
 * connect() of the process. grpc-js shares a connection (subchannel) between
 * clients of the same address only when their credentials are equal, and two
 * `createSsl` results never are: without this, each connect() opened a TCP
 * and TLS connection of its own, where plaintext clients share one. Keyed by
 * the paths and the files' modification times, so a rotated certificate is
 * read by the next connect(). Bounded: a process names few sets of files.
 */
import { statSync } from 'node:fs';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { grpcChannelCredentials, type TlsFiles } from '@muster/common';

const MAX_ENTRIES = 16;
const cache = new Map<string, ChannelCredentials>();

function mtime(path: string | undefined): number {
  if (path === undefined) return 0;
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1; // grpcChannelCredentials says what is wrong with it
  }
}

export function sharedChannelCredentials(files: TlsFiles): ChannelCredentials {
  const key = JSON.stringify([files.ca, files.cert, files.key, mtime(files.ca), mtime(files.cert), mtime(files.key)]);
  let creds = cache.get(key);
  if (!creds) {
    creds = grpcChannelCredentials(files);
    if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!);
    cache.set(key, creds);
  }
  return creds;
}
