/**
 * One attempt of a readiness or liveness probe. An attempt never throws and
 * never outlives its timeout: it answers pass (true) or fail (false), and the
 * caller (the shard runner) decides what repeated failures mean.
 *
 * Probes only ever talk to 127.0.0.1: a shard's ports are on this node, and
 * a probe must not become a way to reach elsewhere.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { runCommandInGroup } from './process.js';
import type { ProbeSpec } from './types.js';

export interface ProbeContext {
  /**
   * Environment, cwd and uid/gid of exec probes: the shard's own, as if run
   * inside it (never the agent's: the probe's program may sit in the rank's
   * home, which the rank can rewrite).
   */
  env: Record<string, string>;
  cwd?: string | undefined;
  uid?: number;
  gid?: number;
  /**
   * sdk probes: readiness passes once the shard sent `{ muster: 'ready' }`;
   * liveness passes while its IPC channel is connected (a shard whose SDK
   * went away, or that closed the channel, is not alive to the agent).
   */
  sdk(): boolean;
}

export async function runProbe(p: ProbeSpec, timeoutMs: number, ctx: ProbeContext): Promise<boolean> {
  switch (p.kind) {
    case 'http':
      return httpProbe(p.port, p.path, timeoutMs);
    case 'tcp':
      return tcpProbe(p.port, timeoutMs);
    case 'exec':
      return execProbe(p.command, p.args, timeoutMs, ctx);
    case 'sdk':
      return ctx.sdk();
  }
}

/** GET http://127.0.0.1:<port><path>; 2xx and 3xx pass (kubelet's rule), redirects are not followed. */
function httpProbe(port: number, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', agent: false }, (res) => {
      const code = res.statusCode ?? 0;
      res.resume();
      done(code >= 200 && code < 400);
    });
    const timer = setTimeout(() => done(false), timeoutMs);
    function done(ok: boolean): void {
      clearTimeout(timer);
      req.destroy();
      resolve(ok);
    }
    req.on('error', () => done(false));
    req.end();
  });
}

/** Passes when a TCP connection to 127.0.0.1:<port> opens. */
function tcpProbe(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => done(false), timeoutMs);
    function done(ok: boolean): void {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    }
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** Passes when the command exits 0 within the timeout (its process group killed after it: process.ts). */
async function execProbe(command: string, args: string[], timeoutMs: number, ctx: ProbeContext): Promise<boolean> {
  return (await runCommandInGroup(command, args, ctx, { timeoutMs })).ok;
}
