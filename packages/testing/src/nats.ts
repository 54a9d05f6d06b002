/**
 * A real nats-server with user/password auth, on a free loopback port (or the
 * one given), its config (mode 0600) in `dir`.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NatsAccess } from '@muster/proto';
import { findBinary } from './binaries.js';
import { freePort } from './ports.js';
import { spawnManaged, type ManagedProcess } from './procs.js';

export interface NatsServer {
  readonly access: NatsAccess;
  readonly url: string;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startNats(opts: { dir: string; port?: number; subjectPrefix?: string }): Promise<NatsServer> {
  const bin = await findBinary('nats-server');
  const port = opts.port ?? (await freePort());
  const user = 'muster';
  const password = randomBytes(18).toString('base64url');
  const conf = join(opts.dir, 'nats.conf');
  await writeFile(
    conf,
    [
      `listen: "127.0.0.1:${port}"`,
      `authorization { user: "${user}", password: "${password}" }`,
      'max_payload: 8MB',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const proc = spawnManaged('nats-server', bin, ['-c', conf]);
  await proc.waitForLine((l) => l.includes('Server is ready'), 15_000);
  const url = `nats://127.0.0.1:${port}`;
  return {
    url,
    access: { servers: [url], user, password, subjectPrefix: opts.subjectPrefix ?? 'muster' },
    process: proc,
    stop: () => proc.stop(2_000),
  };
}
