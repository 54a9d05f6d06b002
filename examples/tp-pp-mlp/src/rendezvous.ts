/**
 * Rendezvous: how WORLD_SIZE processes that know only MASTER_ADDR:MASTER_PORT
 * find each other (torch's TCPStore plays this part for NCCL).
 *
 *   rank 0                                   every rank (rank 0 too)
 *   listen MASTER_ADDR:MASTER_PORT
 *                      ◀── hello {rank, tp/pp coordinates, sizes, peer port, replica, group, attempt, seed}
 *   … until WORLD_SIZE hellos …
 *   check them all as one
 *                      ──▶ table [{rank, host, port, tpRank, ppRank}]   (or error {variable, message})
 *   close the listener
 *
 * A rank's host is the address rank 0 saw its hello come from: the contract
 * gives no variable for "my own address", and whatever route reached rank 0
 * reaches the peers too. Rank 0 answers only once all hellos are in, and
 * answers everyone alike, so a broken gang fails on every rank at once with
 * the same message instead of half the ranks waiting for a timeout.
 */
import { SHARD_ENV } from '@muster/contracts';
import { createServer, type Server } from 'node:net';
import type { ShardEnv } from './env.js';
import { Conn, TimeoutError, dial, seconds } from './frames.js';

/** What a rank tells rank 0 about itself. */
export interface Hello {
  rank: number;
  worldSize: number;
  tpRank: number;
  tpSize: number;
  ppRank: number;
  ppSize: number;
  replicaId: string;
  group: string;
  attempt: string | null;
  seed: number;
  /** The port of this rank's peer listener. */
  port: number;
  pid: number;
}

/** One row of the address table. */
export interface PeerAddr {
  rank: number;
  host: string;
  port: number;
  tpRank: number;
  ppRank: number;
}

/** Ranks disagree about the gang: a launcher bug, reported like a bad variable (exit 2). */
export class LayoutError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = 'LayoutError';
  }
}

export function helloOf(env: ShardEnv, seed: number, port: number): Hello {
  const { rank, worldSize, tpRank, tpSize, ppRank, ppSize, replicaId, group, attempt } = env;
  return { rank, worldSize, tpRank, tpSize, ppRank, ppSize, replicaId, group, attempt, seed, port, pid: process.pid };
}

/**
 * Checks a complete set of hellos against rank 0's own (the reference for the
 * gang's shape). Returns the first problem, naming the variable to fix, or null.
 */
export function checkHellos(own: Hello, hellos: readonly Hello[]): { variable: string; message: string } | null {
  const same: Array<[keyof Hello, string]> = [
    ['worldSize', 'WORLD_SIZE'],
    ['tpSize', SHARD_ENV.TP_SIZE],
    ['ppSize', SHARD_ENV.PP_SIZE],
    ['replicaId', SHARD_ENV.REPLICA_ID],
    ['group', SHARD_ENV.GROUP],
    // A straggler of a previous attempt that reaches the new rank 0 (same port, fast restart).
    ['attempt', SHARD_ENV.ATTEMPT],
    ['seed', 'MODEL_SEED'],
  ];
  const seen = new Map<number, Hello>();
  for (const h of [...hellos].sort((a, b) => a.rank - b.rank)) {
    for (const [key, variable] of same) {
      if (h[key] !== own[key]) {
        return { variable, message: `rank ${h.rank} (pid ${h.pid}) has ${variable}=${h[key]} but rank 0 has ${variable}=${own[key]}` };
      }
    }
    const dup = seen.get(h.rank);
    if (dup) return { variable: 'RANK', message: `RANK=${h.rank} is claimed by two processes (pids ${dup.pid} and ${h.pid})` };
    seen.set(h.rank, h);
    if (h.rank < 0 || h.rank >= own.worldSize) return { variable: 'RANK', message: `RANK=${h.rank} is out of range for WORLD_SIZE=${own.worldSize}` };
    if (h.ppRank * own.tpSize + h.tpRank !== h.rank) {
      return {
        variable: SHARD_ENV.TP_RANK,
        message: `rank ${h.rank} claims MUSTER_PP_RANK=${h.ppRank}, MUSTER_TP_RANK=${h.tpRank}; the layout puts it at ${Math.floor(h.rank / own.tpSize)}, ${h.rank % own.tpSize}`,
      };
    }
  }
  return null;
}

/**
 * Rank 0's side. Resolves once listening; the server then runs on its own
 * until it has answered a full gang, and closes itself.
 */
export async function startRendezvousServer(own: Hello, host: string, port: number): Promise<Server> {
  const joined: Array<{ conn: Conn; hello: Hello; host: string }> = [];
  let answered = false;
  const server = createServer((socket) => {
    const host = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const conn = new Conn(socket, `rank at ${host}`);
    conn.recv(Infinity).then(
      (frame) => {
        if (answered || frame.header['t'] !== 'hello') return conn.close();
        const entry = { conn, hello: frame.header as unknown as Hello, host };
        joined.push(entry);
        // A rank that gave up (timed out, exited) no longer counts.
        conn.onClose(() => {
          const i = joined.indexOf(entry);
          if (!answered && i >= 0) joined.splice(i, 1);
        });
        if (joined.length === own.worldSize) answer();
      },
      () => conn.close(),
    );
  });
  const answer = (): void => {
    answered = true;
    const problem = checkHellos(own, joined.map((j) => j.hello));
    const table: PeerAddr[] = joined
      .map(({ hello: h, host }) => ({ rank: h.rank, host, port: h.port, tpRank: h.tpRank, ppRank: h.ppRank }))
      .sort((a, b) => a.rank - b.rank);
    for (const { conn } of joined) {
      conn.send(problem ? { t: 'error', ...problem } : { t: 'table', table });
      conn.close();
    }
    server.close();
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(`cannot listen on ${host}:${port} for the rendezvous (${e.code ?? e.message}); is another rank 0 running?`, { cause: e })),
    );
    server.listen(port, host, () => resolve());
  });
  return server;
}

/**
 * Every rank's side: register with rank 0 and get the address table. Keeps
 * trying to connect until the deadline (rank 0 may start last), then waits
 * for the answer within the same deadline.
 */
export async function rendezvous(env: ShardEnv, hello: Hello, timeoutMs: number): Promise<PeerAddr[]> {
  const deadline = Date.now() + timeoutMs;
  const where = `${env.masterAddr}:${env.masterPort}`;
  const timeout = (detail: string): Error => new Error(`no rendezvous with ${where} within ${seconds(timeoutMs)} s (${detail})`);

  let socket;
  for (let delay = 25; ; delay = Math.min(delay * 2, 500)) {
    try {
      socket = await dial(env.masterAddr, env.masterPort, deadline - Date.now());
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      if (Date.now() + delay >= deadline) throw timeout(`could not connect: ${code}`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  const conn = new Conn(socket, `rendezvous ${where}`);
  conn.send({ t: 'hello', ...hello });
  let frame;
  try {
    frame = await conn.recv(deadline - Date.now());
  } catch (e) {
    conn.socket.destroy();
    if (e instanceof TimeoutError) throw timeout(`connected; rank 0 was still waiting for all ${env.worldSize} ranks`);
    throw new Error(`rendezvous with ${where} failed: ${(e as Error).message}`, { cause: e });
  }
  conn.close();
  const h = frame.header;
  if (h['t'] === 'error') throw new LayoutError(String(h['variable']), `rank 0 refused the gang: ${String(h['message'])}`);
  const table = h['t'] === 'table' ? (h['table'] as PeerAddr[]) : [];
  const mine = table[env.rank];
  if (table.length !== env.worldSize || table.some((p, i) => p.rank !== i) || mine?.port !== hello.port) {
    throw new Error(`rendezvous with ${where} returned a malformed address table`);
  }
  return table;
}
