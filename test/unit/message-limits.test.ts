/**
 * One message limit on every gRPC link: each gRPC server and client the
 * packages build takes its options from @muster/contracts (grpc-options.ts:
 * serverChannelOptions, clientChannelOptions, etcdChannelOptions), which
 * carry MAX_MESSAGE_BYTES both ways. This reads every source file and fails,
 * naming file:line, where a server or client is built without them (grpc-js'
 * defaults would then accept 4 MiB but send without bound, or the reverse).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clientChannelOptions, etcdChannelOptions, MAX_MESSAGE_BYTES, serverChannelOptions } from '@muster/contracts';

const root = join(import.meta.dirname, '..', '..');

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (!['node_modules', 'dist', 'gen'].includes(e.name)) sources(p, out);
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/**
 * `new Server(…)`, `new FooServiceClient(…)`, the SDK's `new service(…)` (a
 * generated client class passed in) and the etcd client's `grpcOptions`,
 * with the text of their arguments up to the statement's end.
 */
const BUILDS = /new (Server|service|\w+ServiceClient)\(([\s\S]*?)\);|grpcOptions:([^\n]*)/g;

describe('gRPC message limits', () => {
  it('every options builder carries MAX_MESSAGE_BYTES both ways', () => {
    for (const o of [serverChannelOptions(), clientChannelOptions(), etcdChannelOptions()]) {
      expect(o['grpc.max_receive_message_length']).toBe(MAX_MESSAGE_BYTES);
      expect(o['grpc.max_send_message_length']).toBe(MAX_MESSAGE_BYTES);
    }
  });

  it('every gRPC server and client in the packages is built with them', () => {
    const found: string[] = [];
    const bare: string[] = [];
    for (const pkg of readdirSync(join(root, 'packages'))) {
      for (const file of sources(join(root, 'packages', pkg, 'src'))) {
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(BUILDS)) {
          const where = `${relative(root, file)}:${text.slice(0, m.index).split('\n').length}`;
          found.push(where);
          const args = m[2] ?? m[3] ?? '';
          // A client built from a shared options object (sdk/endpoints.ts) names it; the object is checked below.
          // The etcd lease keeper's thread gets etcdChannelOptions() through workerData under that name.
          if (!/(server|client|etcd)ChannelOptions\(|clientOptions\b|workerData\.etcdChannelOptions\b/.test(args)) bare.push(`${where}: ${m[0].trim()}`);
        }
      }
    }
    expect(found.length).toBeGreaterThanOrEqual(4); // the head's server, the agent's client, the SDK's clients, the etcd client: the scan sees them
    expect(bare).toEqual([]);
    expect(readFileSync(join(root, 'packages/sdk/src/endpoints.ts'), 'utf8')).toMatch(/const clientOptions = clientChannelOptions\(/);
  });
});
