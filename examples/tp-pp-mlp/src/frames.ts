/**
 * Wire format and a frame-level connection, shared by the rendezvous and the
 * peer mesh.
 *
 * One frame:
 *
 *   u32 BE  length of everything after this field
 *   u32 BE  header length in bytes
 *   ...     header: UTF-8 JSON (message type, tag, sender)
 *   ...     payload: float64 little-endian × n (n = rest / 8; may be 0)
 *
 * JSON keeps the control part readable in a packet dump; the tensor travels
 * as raw float64 so nothing is lost to decimal conversion. Explicit LE byte
 * order keeps the format the same on any host.
 */
import { connect, type Socket } from 'node:net';

/** A peer never legitimately sends more; a bigger length means a stray client or corrupt stream. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export type Header = Record<string, unknown>;

export interface Frame {
  header: Header;
  data: Float64Array;
}

/** recv() ran out of time (callers turn it into "no X within N s"). */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** "30" for 30000 ms, "0.5" for 500 ms: error messages speak in seconds. */
export function seconds(ms: number): string {
  return String(Math.round(ms) / 1000);
}

export function encodeFrame(header: Header, data?: Float64Array): Buffer {
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  const n = data?.length ?? 0;
  const buf = Buffer.allocUnsafe(8 + head.length + 8 * n);
  buf.writeUInt32BE(4 + head.length + 8 * n, 0);
  buf.writeUInt32BE(head.length, 4);
  head.copy(buf, 8);
  let off = 8 + head.length;
  for (let i = 0; i < n; i++, off += 8) buf.writeDoubleLE(data![i]!, off);
  return buf;
}

/** Turns a byte stream, cut anywhere, back into frames. Throws on a malformed stream. */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Frame[] = [];
    while (this.pending.length >= 4) {
      const len = this.pending.readUInt32BE(0);
      if (len > MAX_FRAME_BYTES) throw new Error(`frame of ${len} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`);
      if (len < 4) throw new Error(`frame length ${len} is too short`);
      if (this.pending.length < 4 + len) break;
      const headLen = this.pending.readUInt32BE(4);
      const dataBytes = len - 4 - headLen;
      if (dataBytes < 0 || dataBytes % 8 !== 0) throw new Error(`frame with a ${headLen}-byte header in ${len} bytes is malformed`);
      let header: unknown;
      try {
        header = JSON.parse(this.pending.toString('utf8', 8, 8 + headLen));
      } catch {
        throw new Error('frame header is not JSON');
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error('frame header is not an object');
      const data = new Float64Array(dataBytes / 8);
      for (let i = 0, off = 8 + headLen; i < data.length; i++, off += 8) data[i] = this.pending.readDoubleLE(off);
      frames.push({ header: header as Header, data });
      this.pending = this.pending.subarray(4 + len);
    }
    return frames;
  }
}

/**
 * A socket speaking frames. The protocols on top are strictly ordered per
 * connection (each side knows what comes next), so a FIFO of received frames
 * and one waiter at a time is all it takes. Frames that arrived before the
 * peer closed are still delivered; only then does recv() fail.
 */
export class Conn {
  private readonly decoder = new FrameDecoder();
  private readonly queue: Frame[] = [];
  private waiter: { resolve: (f: Frame) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;
  private readonly closeHandlers: Array<() => void> = [];

  constructor(
    readonly socket: Socket,
    /** Who is on the other end, for error messages ("rank 5", "rendezvous 127.0.0.1:29500"); renamed once known. */
    public peer: string,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        this.fail(new Error(`bad data from ${this.peer}: ${(e as Error).message}`));
        socket.destroy();
        return;
      }
      for (const f of frames) this.deliver(f);
    });
    socket.on('error', (e) => this.fail(new Error(`connection to ${this.peer} failed: ${e.message}`)));
    socket.on('close', () => {
      this.fail(new Error(`${this.peer} closed the connection`));
      for (const h of this.closeHandlers) h();
    });
  }

  send(header: Header, data?: Float64Array): void {
    this.socket.write(encodeFrame(header, data));
  }

  /** The next frame; rejects with TimeoutError after `timeoutMs` (Infinity: wait forever), or when the connection ends. */
  recv(timeoutMs: number): Promise<Frame> {
    const next = this.queue.shift();
    if (next) return Promise.resolve(next);
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) return Promise.reject(new Error(`concurrent recv on the connection to ${this.peer}`));
    return new Promise<Frame>((resolve, reject) => {
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
            this.waiter = null;
            reject(new TimeoutError(`timed out waiting for ${this.peer}`));
          }, Math.max(0, timeoutMs))
        : null;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        this.waiter = null;
      };
      this.waiter = {
        resolve: (f) => (done(), resolve(f)),
        reject: (e) => (done(), reject(e)),
      };
    });
  }

  onClose(handler: () => void): void {
    this.closeHandlers.push(handler);
  }

  /** Half-closes after everything written is flushed, so a last frame is never lost. */
  close(): void {
    this.socket.end();
  }

  private deliver(f: Frame): void {
    if (this.waiter) this.waiter.resolve(f);
    else this.queue.push(f);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.waiter?.reject(this.failure);
  }
}

/** One TCP connect attempt that gives up after `timeoutMs`; the error keeps the errno code (ECONNREFUSED, …). */
export function dial(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`connect to ${host}:${port} timed out`), { code: 'ETIMEDOUT' }));
    }, Math.max(1, timeoutMs));
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    });
  });
}
