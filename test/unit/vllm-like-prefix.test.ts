/**
 * The vLLM stand-in's prefix cache (test/fixtures/vllm-like.mjs, issue 18):
 * a prompt whose first `--prefix-chars` characters it prefilled before skips
 * the prefill (`x-prefix-cache: hit`), the cache keeps `--prefix-cache-size`
 * prefixes (least recently used go first), chat prompts key on the messages
 * in order, and /metrics counts queries and hits.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnManaged, type ManagedProcess } from '@muster/testing';

const fixture = fileURLToPath(new URL('../fixtures/vllm-like.mjs', import.meta.url));

describe('vllm-like prefix cache', () => {
  let server: ManagedProcess | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('answers a cached prefix as a hit, evicts the least recently used, and counts both on /metrics', async () => {
    server = spawnManaged('vllm-like', process.execPath, [fixture, '--port', '0', '--token-delay-ms', '0', '--prefill-delay-ms', '5', '--prefix-chars', '6', '--prefix-cache-size', '2']);
    const base = /(http:\/\/[0-9.:]+)/.exec(await server.waitForLine((l) => l.includes('serving')))![1]!;
    const complete = async (prompt: string) => (await fetch(`${base}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'fake-model', prompt, max_tokens: 1 }) })).headers.get('x-prefix-cache');
    expect(await complete('AAAAAA one')).toBe('miss');
    expect(await complete('AAAAAA two')).toBe('hit'); // same first 6 characters
    expect(await complete('BBBBBB')).toBe('miss');
    expect(await complete('AAAAAA three')).toBe('hit'); // A is now the most recently used
    expect(await complete('CCCCCC')).toBe('miss'); // evicts B (size 2)
    expect(await complete('BBBBBB')).toBe('miss');
    expect(await complete('CCCCCC')).toBe('hit');
    const chat = async (system: string, user: string) => (await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'fake-model', messages: [{ role: 'system', content: system }, { role: 'user', content: user }], max_tokens: 1 }) })).headers.get('x-prefix-cache');
    expect(await chat('sys', 'a')).toBe('miss');
    expect(await chat('sys', 'b')).toBe('hit'); // "system\nsys" is the key's 6 characters: "system"
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(/^vllm:prefix_cache_queries_total\{[^}]*\} (\d+)$/m.exec(text)?.[1]).toBe('9');
    expect(/^vllm:prefix_cache_hits_total\{[^}]*\} (\d+)$/m.exec(text)?.[1]).toBe('4');
  });
});
