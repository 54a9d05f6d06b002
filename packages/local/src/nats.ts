/**
 * A real nats-server with user/password auth, on a free loopback port (or the
 * one given), its config (mode 0600) in `dir`. It can be killed and started
 * again on the same port with the same config (clients reconnect by themselves).
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_MESSAGE_BYTES } from '@muster/contracts';
import type { NatsAccess } from '@muster/proto';
import { findBinary } from './binaries.js';
import { freePort } from './ports.js';
import { spawnManaged, type ManagedProcess } from './procs.js';
import { restartable, type Restartable } from './restartable.js';

export interface NatsServer extends Restartable {
  readonly access: NatsAccess;
  readonly url: string;
  stop(): Promise<void>;
}

export async function startNats(opts: { dir: string; port?: number; subjectPrefix?: string; tag?: string }): Promise<NatsServer> {
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
      // The one message limit of every link (gRPC's too): larger payloads fail with MUSTER_RESOURCE_EXHAUSTED.
      `max_payload: ${MAX_MESSAGE_BYTES}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const launch = async (): Promise<ManagedProcess> => {
    const p = spawnManaged('nats-server', bin, ['-c', conf], { tag: opts.tag });
    await p.waitForLine((l) => l.includes('Server is ready'), 15_000).catch(async (e: unknown) => {
      await p.stop(1_000);
      throw e;
    });
    return p;
  };
  const server = await restartable('nats-server', launch);
  const url = `nats://127.0.0.1:${port}`;
  return Object.assign(server, {
    url,
    access: { servers: [url], user, password, subjectPrefix: opts.subjectPrefix ?? 'muster' },
    stop: () => server.process.stop(2_000),
  });
}
