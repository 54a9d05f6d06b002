/**
 * In Kubernetes: follow this worker's own Node object and tell the head to
 * drain the node while it is cordoned.
 *
 * `kubectl drain` evicts pods but not DaemonSet pods, so the worker keeps
 * running through it; what it does do first is cordon the node
 * (`spec.unschedulable: true`, also set by `kubectl cordon`, cluster
 * autoscalers and node upgrade tooling). The worker polls
 * `GET /api/v1/nodes/<name>` every `pollMs` with its service account token
 * (read again on every poll: projected tokens rotate) and reports the value
 * on the first successful read and on every change:
 *
 *   unschedulable true  → NodeDrain { draining: true,  reason: "Kubernetes node <name> cordoned" }
 *   unschedulable false → NodeDrain { draining: false }   (the head clears only a drain an agent asked for)
 *
 * Polling, not a watch: one small GET every few seconds per node is nothing
 * for the API server, needs only `get` on nodes (the role the topology init
 * container already has), and has no watch to resume. A failed poll changes
 * nothing; the error is logged once until a poll succeeds again.
 *
 * Plain node:https (the CA is the pod's service account CA), no client library.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import type { Logger } from '@muster/common';
import type { NodeDrain } from '@muster/proto';

export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface NodeCordonWatchOptions {
  /** The Kubernetes Node's name (the worker's node id: `spec.nodeName` in the DaemonSet). */
  nodeName: string;
  /** API server base URL, e.g. https://10.96.0.1:443. */
  apiBase: string;
  /** Holds `token` and (for https) `ca.crt`. */
  serviceAccountDir: string;
  pollMs: number;
  onChange(drain: NodeDrain): void;
  log: Logger;
}

/** The API server a pod reaches (KUBERNETES_SERVICE_HOST/_PORT), or undefined outside a pod. */
export function kubeApiFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) return undefined;
  return `https://${host.includes(':') ? `[${host}]` : host}:${env.KUBERNETES_SERVICE_PORT || '443'}`;
}

/** Running in a pod that has a service account token mounted. */
export function hasServiceAccount(dir: string, env: NodeJS.ProcessEnv = process.env): boolean {
  return kubeApiFromEnv(env) !== undefined && existsSync(join(dir, 'token'));
}

export class NodeCordonWatch {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private last: boolean | undefined;
  private lastError: string | undefined;

  constructor(private readonly opts: NodeCordonWatchOptions) {}

  start(): void {
    // poll() never throws (it logs and keeps the drain state); a bug in it still must not stop the polling.
    const next = () => {
      if (this.stopped) return;
      this.timer = setTimeout(loop, this.opts.pollMs);
      this.timer.unref();
    };
    const loop = () => {
      this.poll().then(next, (e: unknown) => {
        this.opts.log.error({ err: (e as Error).message }, 'node cordon poll threw; polling again');
        next();
      });
    };
    loop();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** One poll: reads the Node and reports a change; never throws. */
  async poll(): Promise<void> {
    let cordoned: boolean;
    try {
      cordoned = await this.read();
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== this.lastError) this.opts.log.warn({ node: this.opts.nodeName, err: msg }, 'cannot read this node from the Kubernetes API; drain state unchanged, retrying');
      this.lastError = msg;
      return;
    }
    this.lastError = undefined;
    if (this.stopped || cordoned === this.last) return;
    this.last = cordoned;
    this.opts.log.info({ node: this.opts.nodeName, unschedulable: cordoned }, cordoned ? 'Kubernetes node cordoned' : 'Kubernetes node schedulable');
    this.opts.onChange({ draining: cordoned, reason: cordoned ? `Kubernetes node ${this.opts.nodeName} cordoned` : '' });
  }

  private async read(): Promise<boolean> {
    const url = new URL(`/api/v1/nodes/${encodeURIComponent(this.opts.nodeName)}`, this.opts.apiBase);
    const token = (await readFile(join(this.opts.serviceAccountDir, 'token'), 'utf8')).trim();
    const ca = url.protocol === 'https:' ? await readFile(join(this.opts.serviceAccountDir, 'ca.crt')) : undefined;
    const node = (await getJson(url, { authorization: `Bearer ${token}`, accept: 'application/json' }, ca)) as { spec?: { unschedulable?: boolean } };
    return node.spec?.unschedulable === true;
  }
}

function getJson(url: URL, headers: Record<string, string>, ca: Buffer | undefined): Promise<unknown> {
  const get = url.protocol === 'https:' ? https.get : http.get;
  return new Promise((resolve, reject) => {
    const req = get(url, { headers, ...(ca ? { ca } : {}), timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`GET ${url.pathname}: HTTP ${res.statusCode} ${body.slice(0, 200)}`));
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(new Error(`GET ${url.pathname}: bad JSON: ${(e as Error).message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.pathname}: timed out`)));
    req.on('error', reject);
  });
}
