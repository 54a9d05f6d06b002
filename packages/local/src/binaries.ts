/**
 * Finds the external servers Muster runs beside itself (etcd, nats-server):
 * MUSTER_<NAME>_BIN, then PATH, then Debian's install locations.
 */
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

const debianPaths: Record<string, string[]> = {
  etcd: ['/usr/bin/etcd'],
  'nats-server': ['/usr/bin/nats-server', '/usr/sbin/nats-server'],
};

export async function findBinary(name: 'etcd' | 'nats-server'): Promise<string> {
  const envName = `MUSTER_${name.replace('-', '_').toUpperCase()}_BIN`;
  const candidates = [
    process.env[envName],
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, name)),
    ...(debianPaths[name] ?? []),
  ].filter((c): c is string => !!c);
  for (const c of candidates) {
    try {
      await access(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  throw new Error(
    `${name} not found (looked at $${envName}, PATH and ${debianPaths[name]?.join(', ')}). ` +
      `Install it: apt-get install -y ${name === 'etcd' ? 'etcd-server' : 'nats-server'}`,
  );
}
