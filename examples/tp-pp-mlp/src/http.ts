/**
 * The rank's HTTP face on MUSTER_PORT_HTTP, for Muster's probes and for
 * whoever wants the answer:
 *
 *   GET /health  503 until the forward pass has completed, then 200
 *                (a readiness probe on it makes a gang READY only when the
 *                inference worked end to end);
 *   GET /result  the result JSON on the last stage once known (503 before),
 *                404 on the other stages, which have no result.
 *
 * The server starts before the rendezvous so that a port clash fails the rank
 * at once, and so that a liveness probe sees a live process while it waits.
 */
import { createServer, type Server } from 'node:http';

/** What the server shows; rank.ts fills it in as the rank progresses. */
export interface RankState {
  rank: number;
  lastStage: boolean;
  ready: boolean;
  result: object | null;
}

export async function startHttp(state: RankState, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    const reply = (status: number, body: object): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body) + '\n');
    };
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return reply(405, { error: 'only GET' });
    if (path === '/health') {
      return state.ready ? reply(200, { status: 'ready', rank: state.rank }) : reply(503, { status: 'starting', rank: state.rank });
    }
    if (path === '/result') {
      if (!state.lastStage) return reply(404, { error: `rank ${state.rank} is not on the last pipeline stage` });
      return state.result ? reply(200, state.result) : reply(503, { error: 'forward pass not done yet' });
    }
    reply(404, { error: `no route ${path}` });
  });
  // Probes use short-lived connections; don't let idle keep-alive sockets delay a SIGTERM exit.
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(`cannot serve HTTP on ${host}:${port} (MUSTER_PORT_HTTP; ${e.code ?? e.message})`, { cause: e })),
    );
    server.listen(port, host, () => resolve());
  });
  return server;
}
