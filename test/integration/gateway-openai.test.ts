/**
 * The gateway as an OpenAI-compatible front door, end to end: a real
 * `muster gateway` in front of a cluster serving the vLLM-like fixture
 * (test/fixtures/vllm-like.mjs) as an HTTP group and the TS test replica as
 * a `serve()` group, asked with plain fetch() as an OpenAI client would.
 *
 * Shown here: chat, completions and embeddings by model name, streamed (SSE
 * arriving while the engine still generates, with no Accept header) and
 * not; /v1/models; unknown model → OpenAI 404 listing the models; upstream
 * 4xx/5xx passed through (OpenAI routes, /http/ and /call); a binary upload
 * through /http/ unchanged; 413; the
 * deadline header → 504; x-request-id in and out; the client going away
 * stops the engine's generation; an upper-case group name's clear 404; and a
 * call arriving at zero replicas served after a model load longer than the
 * group's own request deadline (it waits up to the startup deadline).
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster, type ManagedProcess } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { startTestGateway } from './gateway.test-support.js';

const vllmLike = fileURLToPath(new URL('../fixtures/vllm-like.mjs', import.meta.url));
const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));

/**
 * The cold start's model load. MUSTER_TEST_MODEL_LOAD_MS=40000 runs the
 * issue's 40 s load (the test then takes over a minute and a half); the
 * default is shorter, and the group's request deadline shorter still, so the
 * first call is served only because it waits up to the startup deadline.
 */
const MODEL_LOAD_MS = Number(process.env.MUSTER_TEST_MODEL_LOAD_MS ?? 6_000);

const readyReplicas = async (sdk: Cluster, name: string) => (await sdk.replicaGroups.get(name)).replicas.filter((r) => r.state === 'ready').length;

/** The events of an SSE body, `data: ` taken off. */
const sseEvents = (text: string) => text.split('\n\n').map((e) => e.trim()).filter(Boolean).map((e) => e.replace(/^data: /, ''));

describe('gateway: OpenAI-compatible routes', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let gw: ManagedProcess;
  let base: string;
  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  beforeAll(async () => {
    await sdk.replicaGroups.apply({
      name: 'llm',
      httpPort: 'http',
      models: ['fake-model', 'fake-model-b'],
      template: {
        command: process.execPath,
        args: [vllmLike, '--models', 'fake-model,fake-model-b', '--token-delay-ms', '20', '--max-concurrency', '4'],
        env: { VLLM_LIKE_QUIET: '1' },
        ports: [{ name: 'http' }],
        readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 },
      },
      replicas: { initial: 1, max: 1 },
    });
    await sdk.replicaGroups.apply({
      name: 'ts-echo',
      models: ['ts-model'],
      template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' } },
      replicas: { initial: 1, max: 1 },
    });
    ({ gw, base } = await startTestGateway(cluster, ['--no-auth', '--max-body-bytes', '65536']));
    await waitFor('both groups ready', async () => ((await readyReplicas(sdk, 'llm')) === 1 && (await readyReplicas(sdk, 'ts-echo')) === 1) || undefined, { timeoutMs: 30_000 });
  }, 60_000);
  afterAll(async () => {
    await gw?.stop();
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  it('lists the models and answers chat, completions and embeddings by model name, keeping the request id', async () => {
    const models = (await (await fetch(`${base}/v1/models`)).json()) as { object: string; data: Array<{ id: string; group: string }> };
    expect(models.object).toBe('list');
    expect(models.data.map((m) => [m.id, m.group])).toEqual([['fake-model', 'llm'], ['fake-model-b', 'llm'], ['ts-model', 'ts-echo']]);

    const chat = await post('/v1/chat/completions', { model: 'fake-model', messages: [{ role: 'user', content: 'hello world' }], max_tokens: 3 }, { 'x-request-id': 'req-42' });
    expect(chat.status).toBe(200);
    expect(chat.headers.get('x-request-id')).toBe('req-42');
    expect(await chat.json()).toMatchObject({ object: 'chat.completion', model: 'fake-model', choices: [{ message: { role: 'assistant', content: 'hello world hello ' } }] });

    const completion = await post('/v1/completions', { model: 'fake-model-b', prompt: 'a b', max_tokens: 2 });
    expect(completion.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/); // made when absent
    expect(await completion.json()).toMatchObject({ object: 'text_completion', model: 'fake-model-b', choices: [{ text: 'a b ' }] });

    const embeddings = (await (await post('/v1/embeddings', { model: 'fake-model', input: ['x', 'y z'] })).json()) as { data: unknown[] };
    expect(embeddings.data).toHaveLength(2);

    // A TS serve() group gets the request as the bridge's payload shape, body parsed.
    const ts = (await (await post('/v1/chat/completions', { model: 'ts-model', messages: [] })).json()) as { echo: unknown };
    expect(ts.echo).toMatchObject({ method: 'POST', path: '/v1/chat/completions', body: { model: 'ts-model', messages: [] } });
  });

  it('streams SSE whatever the Accept header, chunk by chunk while the engine generates, and stops the engine when the client leaves', async () => {
    const whole = await post('/v1/completions', { model: 'fake-model', prompt: 'one two', max_tokens: 3, stream: true });
    expect(whole.headers.get('content-type')).toBe('text/event-stream');
    const events = sseEvents(await whole.text());
    expect(events.at(-1)).toBe('[DONE]');
    expect(events.slice(0, 3).map((e) => (JSON.parse(e) as { choices: Array<{ text: string }> }).choices[0]!.text)).toEqual(['one ', 'two ', 'one ']);

    // 1000 tokens at 20 ms: the first one reaches us while the engine is still running the request…
    const abort = new AbortController();
    const long = await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'fake-model', messages: [{ content: 'go' }], max_tokens: 1000, stream: true }), signal: abort.signal });
    const reader = long.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toMatch(/^data: \{.*"chat.completion.chunk"/);
    const metric = async (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(await (await fetch(`${base}/v1/groups/llm/http/metrics`)).text())?.[1]);
    expect(await metric('vllm:num_requests_running')).toBe(1);
    // …and leaving stops it long before its 20 s would have ended.
    abort.abort();
    await waitFor('the engine stopped generating', async () => (await metric('vllm:num_requests_running')) === 0 || undefined, { timeoutMs: 10_000 });

    // A TS group's stream chunks become SSE events.
    const ts = sseEvents(await (await post('/v1/completions', { model: 'ts-model', prompt: 'x', stream: true })).text());
    expect(ts).toHaveLength(4);
    expect(ts.at(-1)).toBe('[DONE]');
    expect(JSON.parse(ts[0]!)).toMatchObject({ i: 0 });
  });

  it('passes upstream statuses and error bodies through, and answers its own errors in OpenAI\'s shape', async () => {
    for (const status of [422, 503]) {
      const r = await post('/v1/chat/completions', { model: 'fake-model', messages: [], fail: status });
      expect(r.status).toBe(status);
      expect(await r.json()).toEqual({ error: { message: `failed as asked (${status})`, type: status >= 500 ? 'server_error' : 'invalid_request_error', param: null, code: status } });
    }
    // A binary upload (audio) reaches the shard byte for byte.
    const audio = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
    const upload = await fetch(`${base}/v1/groups/llm/http/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=b' }, body: audio });
    expect(await upload.json()).toEqual({ bytes: 4096, sha256: createHash('sha256').update(audio).digest('hex') });
    const viaHttp = await post('/v1/groups/llm/http/v1/completions', { model: 'nope', prompt: 'x' });
    expect(viaHttp.status).toBe(404);
    const viaCall = await post('/v1/groups/llm/call', { path: '/v1/completions', body: { model: 'nope', prompt: 'x' } });
    expect(viaCall.status).toBe(404);
    expect(await viaCall.json()).toMatchObject({ error: { message: 'The model `nope` does not exist.' } });

    const unknown = await post('/v1/chat/completions', { model: 'gpt-17', messages: [] });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: { message: 'The model "gpt-17" does not exist. Models: fake-model, fake-model-b, ts-model', type: 'not_found_error', param: 'model', code: 'model_not_found' } });

    const large = await post('/v1/chat/completions', { model: 'fake-model', messages: [{ content: 'x'.repeat(70_000) }] });
    expect(large.status).toBe(413);
    expect(await large.json()).toMatchObject({ error: { code: 'MUSTER_RESOURCE_EXHAUSTED', message: expect.stringMatching(/over the gateway's limit of 65536 bytes/) } });

    const late = await post('/v1/completions', { model: 'fake-model', prompt: 'x', max_tokens: 200 }, { 'x-muster-timeout-ms': '300' });
    expect(late.status).toBe(504);
    expect(await late.json()).toMatchObject({ error: { type: 'timeout_error', code: 'MUSTER_DEADLINE_EXCEEDED' } });

    const upper = await post('/v1/groups/LLM/call', {});
    expect(upper.status).toBe(404);
    expect(((await upper.json()) as { error: { message: string } }).error.message).toMatch(/group names are lower-case .* did you mean "llm"\?/);
    const route = await post('/v1/nothing', {});
    expect(route.status).toBe(404);
    expect(((await route.json()) as { error: { message: string } }).error.message).toMatch(/\/v1\/groups\/<group>\/http\/<path>/);
  });

  it(`serves the first call at zero replicas after a ${MODEL_LOAD_MS} ms model load, longer than the group's own request deadline`, async () => {
    await sdk.replicaGroups.apply({
      name: 'cold',
      httpPort: 'http',
      models: ['cold-model'],
      requestTimeoutMs: 2_000,
      startup: { deadlineMs: MODEL_LOAD_MS + 20_000 },
      template: {
        command: process.execPath,
        args: [vllmLike, '--models', 'cold-model', '--load-delay-ms', String(MODEL_LOAD_MS), '--token-delay-ms', '0'],
        env: { VLLM_LIKE_QUIET: '1' },
        ports: [{ name: 'http' }],
        readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 100 },
      },
      replicas: { min: 0, max: 1, initial: 1 },
      autoscaling: { metric: 'queue', target: 5, upscaleDelayMs: 0, downscaleDelayMs: 500, scaleToZeroAfterMs: 1_000 },
    });
    await waitFor('cold scaled to zero', async () => {
      const g = await sdk.replicaGroups.get('cold');
      return (g.desired === 0 && g.replicas.every((r) => r.state === 'failed')) || undefined;
    }, { timeoutMs: MODEL_LOAD_MS + 40_000 });
    const r = await post('/v1/chat/completions', { model: 'cold-model', messages: [{ content: 'wake up' }], max_tokens: 2 });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ model: 'cold-model', choices: [{ message: { content: 'wake up ' } }] });
  }, 2 * MODEL_LOAD_MS + 90_000);
});
