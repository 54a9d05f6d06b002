/** Free loopback ports for the servers a local cluster starts (etcd, nats-server). */
import { createServer } from 'node:net';

/** A port that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether `port` can be listened on at 127.0.0.1 right now. */
export async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A metrics listen address on 127.0.0.1: `wanted` when it is free, else
 * port 0 (a free one, picked by the process). The check and the child's own
 * bind are a moment apart; a port taken in between fails that child's start.
 */
export async function metricsListen(wanted: number | undefined): Promise<string> {
  return `127.0.0.1:${wanted && (await portFree(wanted)) ? wanted : 0}`;
}
