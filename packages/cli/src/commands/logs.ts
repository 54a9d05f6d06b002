/**
 * `muster logs <group | gang>`: a shard's log (stdout and stderr), relayed
 * from its worker by the head.
 *
 *   muster logs llm                      rank 0 of every replica of group "llm"
 *   muster logs llm --replica r-1a2b --rank 1
 *   muster logs gang-0a1b2c3d4e          a gang by id (or by name), as before
 *
 * A replica group is looked up first; a name that is no group (or one the
 * caller may not read) is taken as a gang id or name. For a group, each replica's gang is read in turn under a
 * `==> replica <id> (gang <id>, rank <n>) <==` header; with `--follow` they
 * are read at once and every line is prefixed with `[<replica id>] ` so the
 * interleaved lines can be told apart. A replica with no gang yet is named
 * and skipped. `--follow` reads at most 32 replicas at once (more: pick one
 * with --replica), and a line longer than 64 KiB is cut into lines of that
 * size, so neither the streams nor the buffer grow without bound.
 */
import type { Command } from 'commander';
import { ErrorCode, MusterError, isMusterError, type Cluster, type ReplicaView } from '@muster/sdk';
import { addConnectionFlags, withCluster, type ConnectionFlags } from '../connection.js';

interface LogsFlags extends ConnectionFlags {
  rank: string;
  replica?: string;
  follow?: boolean;
  tail: string;
}

export function logsCommand(program: Command): void {
  addConnectionFlags(program.command('logs <group-or-gang>').description("print a shard's log (stdout and stderr), relayed from its worker: rank 0 of each replica of a replica group, or a gang's rank"))
    .option('--rank <n>', 'rank', '0')
    .option('--replica <id>', 'with a group: only this replica (an id of `muster rg get`)')
    .option('-f, --follow', 'keep printing new output')
    .option('--tail <bytes>', 'bytes from the end to start with (per rank)', '65536')
    .action(async (target: string, flags: LogsFlags) => {
      const rank = Number(flags.rank);
      if (!Number.isInteger(rank) || rank < 0) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `--rank: expected a whole number ≥ 0, got "${flags.rank}"`);
      const tailBytes = Number(flags.tail);
      if (!Number.isInteger(tailBytes) || tailBytes < 0) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `--tail: expected a number of bytes, got "${flags.tail}"`);
      await withCluster(flags, async (cluster) => {
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        const opts = { rank, follow: !!flags.follow, tailBytes, signal: abort.signal };
        const replicas = await groupReplicas(cluster, target);
        if (!replicas) {
          if (flags.replica) throw new MusterError(ErrorCode.NOT_FOUND, `--replica: no replica group "${target}" (--replica selects a replica of a group)`);
          for await (const chunk of cluster.gangs.logs(target, opts)) process.stdout.write(chunk);
          return;
        }
        const chosen = flags.replica ? replicas.filter((r) => r.id === flags.replica) : replicas;
        if (flags.replica && chosen.length === 0) {
          throw new MusterError(ErrorCode.NOT_FOUND, `--replica: group "${target}" has no replica "${flags.replica}" (it has: ${replicas.map((r) => r.id).join(', ') || 'none'})`);
        }
        if (chosen.length === 0) return void process.stderr.write(`replica group "${target}" has no replicas\n`);
        const withGang = chosen.filter((r) => r.gangId);
        for (const r of chosen) if (!r.gangId) process.stderr.write(`replica ${r.id} has no gang yet (${r.state}): no log\n`);
        if (!opts.follow) {
          for (const r of withGang) {
            process.stdout.write(`==> replica ${r.id} (gang ${r.gangId}, rank ${rank}) <==\n`);
            for await (const chunk of cluster.gangs.logs(r.gangId, opts)) process.stdout.write(chunk);
          }
          return;
        }
        if (withGang.length > MAX_FOLLOWED_REPLICAS) {
          throw new MusterError(ErrorCode.INVALID_ARGUMENT, `--follow: group "${target}" has ${withGang.length} replicas with a log; at most ${MAX_FOLLOWED_REPLICAS} are followed at once (one stream each): pick one with --replica <id>`);
        }
        await Promise.all(withGang.map(async (r) => {
          const lines = new LinePrefixer(`[${r.id}] `);
          for await (const chunk of cluster.gangs.logs(r.gangId, opts)) process.stdout.write(lines.push(chunk));
          process.stdout.write(lines.end());
        }));
      });
    });
}

/** The replicas of group `name`, or undefined when there is no such group. */
async function groupReplicas(cluster: Cluster, name: string): Promise<ReplicaView[] | undefined> {
  try {
    return (await cluster.replicaGroups.get(name)).replicas;
  } catch (e) {
    if (isMusterError(e) && (e.code === ErrorCode.NOT_FOUND || e.code === ErrorCode.INVALID_ARGUMENT || e.code === ErrorCode.PERMISSION_DENIED)) return undefined;
    throw e;
  }
}

/** Replicas `--follow` reads at once: one log stream (and head relay) each. */
const MAX_FOLLOWED_REPLICAS = 32;

/** A partial line longer than this is written out as a line of its own (a log without newlines must not grow memory). */
export const MAX_PARTIAL_LINE = 64 * 1024;

/**
 * Prefixes each whole line; a partial line waits for its end (or `end()`),
 * up to `maxPartial` characters, past which it is written as it is.
 */
export class LinePrefixer {
  private partial = '';
  private readonly decoder = new TextDecoder();
  constructor(private readonly prefix: string, private readonly maxPartial = MAX_PARTIAL_LINE) {}

  push(chunk: Uint8Array): string {
    const lines = (this.partial + this.decoder.decode(chunk, { stream: true })).split('\n');
    this.partial = lines.pop() ?? '';
    if (this.partial.length > this.maxPartial) {
      lines.push(this.partial);
      this.partial = '';
    }
    return lines.map((l) => `${this.prefix}${l}\n`).join('');
  }

  end(): string {
    const rest = this.partial + this.decoder.decode();
    this.partial = '';
    return rest ? `${this.prefix}${rest}\n` : '';
  }
}
