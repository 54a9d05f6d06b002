/**
 * The vLLM stand-in (test/fixtures/vllm-like.mjs) that the gateway and
 * engine-metrics tests rely on: a client that leaves while its stream waits
 * for the socket to drain gives its generation slot back (else every such
 * client would shrink the server until it serves nobody).
 */
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnManaged, waitFor, type ManagedProcess } from '@muster/testing';

const fixture = fileURLToPath(new URL('../fixtures/vllm-like.mjs', import.meta.url));

describe('vllm-like', () => {
  let server: ManagedProcess | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('frees the slot of a streaming client that leaves while the server waits for drain', async () => {
    server = spawnManaged('vllm-like', process.execPath, [fixture, '--port', '0', '--token-delay-ms', '0', '--max-concurrency', '1']);
    const base = /(http:\/\/[0-9.:]+)/.exec(await server.waitForLine((l) => l.includes('serving')))![1]!;
    const running = async () => Number(/^vllm:num_requests_running\{[^}]*\} (\S+)$/m.exec(await (await fetch(`${base}/metrics`)).text())?.[1]);
    // 4,096 tokens of 64 KiB each: far more than the sockets buffer, so the server waits for drain.
    const body = JSON.stringify({ model: 'fake-model', prompt: 'x'.repeat(64 * 1024), max_tokens: 4096, stream: true });
    const req = request(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    const res = await new Promise<import('node:http').IncomingMessage>((resolve) => req.on('response', resolve).end(body));
    res.pause(); // reads nothing more
    expect(await running()).toBe(1);
    res.destroy();
    await waitFor('the slot was given back', async () => (await running()) === 0 || undefined, { timeoutMs: 10_000 });
    // The one slot serves the next request.
    const next = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'fake-model', prompt: 'hi', max_tokens: 2 }) });
    expect(next.status).toBe(200);
  });
});
