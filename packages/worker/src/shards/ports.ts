/**
 * Ports in use on this host, checked before a rank is spawned. The head
 * allocates each rank's ports from its own ledger, which knows only Muster's
 * gangs; any other process on the host (a stray server, another tool's
 * NodePort) may hold one. A rank started on such a port dies with EADDRINUSE,
 * and its gang would be restarted on the same layout until its budget is
 * spent. So the agent binds each allocated port once, briefly, on every
 * address (the widest bind a rank could make); a port that cannot be bound
 * is reported (`ShardStatusReport.port_in_use`) instead of starting the rank,
 * and the head allocates around it (gang-plan.ts).
 *
 * The check is a moment's look: a port taken between it and the rank's own
 * bind still fails the rank the ordinary way (a counted restart).
 */
import { createServer } from 'node:net';

/** Whether `port` can be bound on this host now; errors other than EADDRINUSE (e.g. EACCES) say nothing and count as free. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e.code !== 'EADDRINUSE'));
    server.listen({ port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** The first of `ports` held by another process on this host, if any. */
export async function firstPortInUse(ports: Iterable<number>): Promise<number | undefined> {
  for (const port of ports) if (port > 0 && !(await portFree(port))) return port;
  return undefined;
}
