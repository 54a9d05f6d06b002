/** The Kubernetes cordon watcher against a fake API server on loopback. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '@muster/common';
import { createLogger } from '@muster/common/log';
import type { NodeDrain } from '@muster/proto';
import { hasServiceAccount, kubeApiFromEnv, NodeCordonWatch } from './kube-node.js';

describe('NodeCordonWatch', () => {
  let server: Server;
  let base: string;
  let dir: string;
  /** The fake API's nodes: name → spec.unschedulable. */
  const nodes = new Map<string, boolean>([['gpu-1', false]]);
  let token = 'sa-token-1';
  const seen: Array<{ url: string; auth: string }> = [];
  const log = createLogger('test', { level: 'silent' });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'muster-kube-node-'));
    mkdirSync(join(dir, 'sa'));
    writeFileSync(join(dir, 'sa', 'token'), `${token}\n`);
    server = createServer((req, res) => {
      seen.push({ url: req.url ?? '', auth: req.headers.authorization ?? '' });
      const m = /^\/api\/v1\/nodes\/([^/]+)$/.exec(req.url ?? '');
      const name = m ? decodeURIComponent(m[1]!) : '';
      if (req.headers.authorization !== `Bearer ${token}`) return void res.writeHead(401).end('{"kind":"Status","reason":"Unauthorized"}');
      if (!nodes.has(name)) return void res.writeHead(404).end('{"kind":"Status","reason":"NotFound"}');
      const spec = nodes.get(name) ? { unschedulable: true, taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }] } : {};
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Node', metadata: { name }, spec }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const watch = (nodeName: string, changes: NodeDrain[], pollMs = 60_000) =>
    new NodeCordonWatch({ nodeName, apiBase: base, serviceAccountDir: join(dir, 'sa'), pollMs, onChange: (d) => changes.push(d), log });

  it('reports the first state, then cordon → drain and uncordon → undrain, once per change', async () => {
    const changes: NodeDrain[] = [];
    const w = watch('gpu-1', changes);
    await w.poll();
    expect(changes).toEqual([{ draining: false, reason: '' }]);
    await w.poll();
    expect(changes).toHaveLength(1); // no change, no message
    nodes.set('gpu-1', true); // kubectl cordon / drain
    await w.poll();
    expect(changes.at(-1)).toEqual({ draining: true, reason: 'Kubernetes node gpu-1 cordoned' });
    await w.poll();
    nodes.set('gpu-1', false); // kubectl uncordon
    await w.poll();
    expect(changes).toEqual([{ draining: false, reason: '' }, { draining: true, reason: 'Kubernetes node gpu-1 cordoned' }, { draining: false, reason: '' }]);
    expect(seen.at(-1)).toEqual({ url: '/api/v1/nodes/gpu-1', auth: 'Bearer sa-token-1' });
  });

  it('reads the token again on every poll (projected tokens rotate), and a failed poll changes nothing', async () => {
    const changes: NodeDrain[] = [];
    const w = watch('gpu-1', changes);
    await w.poll();
    token = 'sa-token-2'; // the API server now wants the new token; the file still has the old one
    nodes.set('gpu-1', true);
    await w.poll();
    expect(changes).toEqual([{ draining: false, reason: '' }]); // 401: nothing reported
    writeFileSync(join(dir, 'sa', 'token'), 'sa-token-2\n'); // the kubelet rotated it
    await w.poll();
    expect(changes.at(-1)).toEqual({ draining: true, reason: 'Kubernetes node gpu-1 cordoned' });
    expect(seen.at(-1)!.auth).toBe('Bearer sa-token-2');
    nodes.set('gpu-1', false);
  });

  it('polls by itself once started, and stops', async () => {
    nodes.set('gpu-2', false);
    const changes: NodeDrain[] = [];
    const w = watch('gpu-2', changes, 20);
    w.start();
    try {
      await waitFor('the first drain report', () => changes.length === 1, { timeoutMs: 5_000, intervalMs: 10 });
      nodes.set('gpu-2', true);
      await waitFor('the cordon to be reported', () => changes.length === 2, { timeoutMs: 5_000, intervalMs: 10 });
      expect(changes[1]).toEqual({ draining: true, reason: 'Kubernetes node gpu-2 cordoned' });
    } finally {
      w.stop();
    }
    const polls = seen.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.length).toBeLessThanOrEqual(polls + 1); // at most one poll was in flight
  });

  it('knows when it runs in a pod with a service account', () => {
    expect(kubeApiFromEnv({})).toBeUndefined();
    expect(kubeApiFromEnv({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' })).toBe('https://10.96.0.1:443');
    expect(kubeApiFromEnv({ KUBERNETES_SERVICE_HOST: 'fd00::1' })).toBe('https://[fd00::1]:443');
    expect(hasServiceAccount(join(dir, 'sa'), { KUBERNETES_SERVICE_HOST: '10.96.0.1' })).toBe(true);
    expect(hasServiceAccount(join(dir, 'sa'), {})).toBe(false);
    expect(hasServiceAccount(join(dir, 'nope'), { KUBERNETES_SERVICE_HOST: '10.96.0.1' })).toBe(false);
  });
});
