/**
 * The peer mesh: one TCP connection per pair of ranks that talk, and the two
 * collectives the model needs on top of it.
 *
 * Who talks to whom (a rank's peers):
 *   - its TP group (same PP stage): the all-reduce after every layer;
 *   - the same TP rank one stage up and one stage down: activations.
 *
 *       stage 0:  r0 ─ r1 ─ … ─ r(T-1)      ─ all-reduce inside a row
 *                  │    │          │         │ activations down a column
 *       stage 1:  rT ─ … ─ r(2T-1)
 *
 * Every TP rank holds the full activation after the all-reduce, so stage p's
 * rank t hands it to stage p+1's rank t: T parallel links instead of one
 * sender fanning out. Of each pair, the higher rank dials the lower one (one
 * connection per pair, no crossing dials) and opens with a peer hello.
 *
 * The all-reduce is the direct one: each rank sends its partial to every
 * other rank of its group and sums all T partials in TP-rank order. That is
 * O(T) messages per rank where NCCL's ring is O(1), which is irrelevant at
 * 2 KiB per message and buys one property worth having: every TP rank adds
 * the same numbers in the same order, so all of them hold bit-identical
 * activations without a broadcast.
 */
import { createServer, type Server } from 'node:net';
import type { ShardEnv } from './env.js';
import { Conn, TimeoutError, dial, seconds } from './frames.js';
import { sumInOrder } from './model.js';
import type { PeerAddr } from './rendezvous.js';

/**
 * This rank's listener, opened before the rendezvous (its port goes into the
 * hello) and so ready for peers that dial the moment they get the table.
 * Connections are held by the peer's rank until the mesh asks for them.
 */
export class PeerListener {
  private readonly arrived = new Map<number, Conn>();
  private readonly waiting = new Map<number, (c: Conn) => void>();

  private readonly server: Server;

  private constructor(replicaId: string) {
    this.server = createServer((socket) => {
      const conn = new Conn(socket, `peer at ${socket.remoteAddress ?? '?'}`);
      conn.recv(30_000).then(
        ({ header: h }) => {
          const rank = Number(h['rank']);
          // Another replica's rank (a stale port, a crossed launch) or a duplicate: not ours.
          if (h['t'] !== 'peer' || h['replicaId'] !== replicaId || this.arrived.has(rank)) return conn.close();
          conn.peer = `rank ${rank}`;
          this.arrived.set(rank, conn);
          this.waiting.get(rank)?.(conn);
        },
        () => conn.close(),
      );
    });
  }

  static async listen(host: string, port: number, replicaId: string): Promise<PeerListener> {
    const self = new PeerListener(replicaId);
    await new Promise<void>((resolve, reject) => {
      self.server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`cannot open the peer listener on ${host}:${port} (${e.code ?? e.message})`, { cause: e })),
      );
      self.server.listen(port, host, () => resolve());
    });
    return self;
  }

  /** The port peers dial (the OS's pick when MUSTER_PORT_DIST is unset). */
  get port(): number {
    const addr = this.server.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  }

  /** The connection from peer `rank`, once it has dialled in. */
  accept(rank: number, timeoutMs: number): Promise<Conn> {
    const ready = this.arrived.get(rank);
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no connection from peer rank ${rank} within ${seconds(timeoutMs)} s`)), timeoutMs);
      this.waiting.set(rank, (c) => (clearTimeout(timer), resolve(c)));
    });
  }

  close(): void {
    this.server.close();
  }
}

/** The ranks `rank` exchanges data with, given the table's coordinates. */
export function peersOf(table: readonly PeerAddr[], rank: number): PeerAddr[] {
  const me = table[rank];
  if (!me) throw new Error(`rank ${rank} is not in the address table`);
  return table.filter(
    (p) => p.rank !== rank && (p.ppRank === me.ppRank || (p.tpRank === me.tpRank && Math.abs(p.ppRank - me.ppRank) === 1)),
  );
}

export class Mesh {
  private constructor(
    private readonly me: PeerAddr,
    private readonly conns: Map<number, Conn>,
    /** This stage's ranks in TP-rank order (the all-reduce's summation order). */
    private readonly tpGroup: readonly number[],
    /** Same TP rank, previous / next stage; null at the ends of the pipeline. */
    readonly prevStage: number | null,
    readonly nextStage: number | null,
    private readonly timeoutMs: number,
  ) {}

  /** Connects this rank to all its peers (dialling lower ranks, accepting higher ones). */
  static async open(env: ShardEnv, listener: PeerListener, table: readonly PeerAddr[], timeoutMs: number): Promise<Mesh> {
    const me = table[env.rank]!;
    const peers = peersOf(table, env.rank);
    const conns = await Promise.all(
      peers.map(async (p): Promise<[number, Conn]> => {
        if (p.rank > env.rank) return [p.rank, await listener.accept(p.rank, timeoutMs)];
        const socket = await dial(p.host, p.port, timeoutMs).catch((e: NodeJS.ErrnoException) => {
          throw new Error(`cannot connect to peer rank ${p.rank} at ${p.host}:${p.port} (${e.code ?? e.message})`, { cause: e });
        });
        const conn = new Conn(socket, `rank ${p.rank}`);
        conn.send({ t: 'peer', rank: env.rank, replicaId: env.replicaId });
        return [p.rank, conn];
      }),
    );
    const find = (pp: number): number | null => table.find((p) => p.ppRank === pp && p.tpRank === me.tpRank)?.rank ?? null;
    const tpGroup = table.filter((p) => p.ppRank === me.ppRank).sort((a, b) => a.tpRank - b.tpRank).map((p) => p.rank);
    return new Mesh(me, new Map(conns), tpGroup, find(me.ppRank - 1), find(me.ppRank + 1), timeoutMs);
  }

  send(to: number, tag: string, data: Float64Array): void {
    this.conn(to).send({ t: 'data', tag, from: this.me.rank }, data);
  }

  /** The next message from `from`, which must carry `tag` and `length` values: anything else is a protocol error. */
  async recv(from: number, tag: string, length: number): Promise<Float64Array> {
    let frame;
    try {
      frame = await this.conn(from).recv(this.timeoutMs);
    } catch (e) {
      if (e instanceof TimeoutError) throw new Error(`no ${tag} from rank ${from} within ${seconds(this.timeoutMs)} s`, { cause: e });
      throw e;
    }
    const h = frame.header;
    if (h['t'] !== 'data' || h['tag'] !== tag || h['from'] !== from || frame.data.length !== length) {
      throw new Error(
        `expected ${tag} (${length} values) from rank ${from}, got ${String(h['tag'])} (${frame.data.length} values) from rank ${String(h['from'])}`,
      );
    }
    return frame.data;
  }

  /** Sum of `mine` over the TP group; every member returns the same bits. */
  async allReduce(tag: string, mine: Float64Array): Promise<Float64Array> {
    for (const r of this.tpGroup) if (r !== this.me.rank) this.send(r, tag, mine);
    const parts = await Promise.all(this.tpGroup.map((r) => (r === this.me.rank ? mine : this.recv(r, tag, mine.length))));
    return sumInOrder(parts);
  }

  /** Flushes and closes every peer connection; safe once the forward pass is done (nothing more will be sent). */
  close(): void {
    for (const c of this.conns.values()) c.close();
  }

  private conn(rank: number): Conn {
    const c = this.conns.get(rank);
    if (!c) throw new Error(`rank ${this.me.rank} has no connection to rank ${rank}`);
    return c;
  }
}
