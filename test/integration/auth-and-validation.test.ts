/**
 * The head's edge: calls without the cluster token are refused and register
 * nothing; malformed registrations are refused naming the field, and the
 * head keeps serving the nodes it has.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Client, Metadata, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { ErrorCode, grpcChannelCredentials, readToken, tokenMetadata } from '@muster/common';
import { AgentMessage, HeadMessage, type Register } from '@muster/proto';
import { connect } from '@muster/sdk';
import { tempDir, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const headBin = join(dirname(createRequire(import.meta.url).resolve('@muster/head/package.json')), 'dist/main.js');

/** TLS that verifies the head but shows no client certificate: the token is the only credential these calls carry. */
let channel: ChannelCredentials;

/** Opens an agent stream, sends `messages`, resolves with how it ended. */
function agentExchange(address: string, md: Metadata, messages: Buffer[], opts: { cancelOnReply?: boolean } = {}): Promise<{ error?: ServiceError; received: Buffer[] }> {
  const client = new Client(address, channel);
  const received: Buffer[] = [];
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest('/muster.v1.AgentService/Connect', (b: Buffer) => b, (b: Buffer) => b, md);
    const timer = setTimeout(() => call.cancel(), 3_000);
    call.on('data', (b: Buffer) => {
      received.push(b);
      if (opts.cancelOnReply) call.cancel();
    });
    const done = (error?: ServiceError) => {
      clearTimeout(timer);
      client.close();
      resolve({ error, received });
    };
    call.on('error', (e: ServiceError) => done(e));
    call.on('end', () => done());
    for (const m of messages) call.write(m);
  });
}

const goodRegister = (nodeId: string): Register => ({
  nodeId,
  incarnation: 'test-incarnation',
  agentVersion: 'test',
  address: '127.0.0.1',
  labels: {},
  taints: [],
  inventory: {
    hostname: 'h',
    cpuCores: 8,
    memoryBytes: 16 * 2 ** 30,
    gpus: [{ index: 0, uuid: 'GPU-0', name: 'Test GPU', memoryMib: 81_559, numaNode: 0, mig: [], pciBusId: '', migEnabled: false }],
    topology: { links: ['X'], nvlinkIslands: [{ gpuIndices: [0] }], nics: [] },
    nvlinkDomain: '',
    source: 'test',
    customResources: {},
  },
});
const encode = (r: Register) => Buffer.from(AgentMessage.encode({ msg: { $case: 'register', value: r } }).finish());

describe('auth and validation at the head', () => {
  let cluster: LocalCluster;
  let token: string;

  useCluster({ workers: 2 }, (fx) => ({ cluster } = fx));
  beforeAll(async () => {
    token = await readToken(cluster.tokenFile);
    channel = grpcChannelCredentials({ ca: cluster.tls!.ca });
  });

  const aliveIds = async () => {
    const sdk = await cluster.connect();
    try {
      return (await sdk.nodes({ state: 'alive' })).map((n) => n.id);
    } finally {
      sdk.close();
    }
  };

  it('refuses SDK calls without a token or with a wrong one', async () => {
    await expect(connect({ address: cluster.address, tls: { ca: cluster.tls!.ca }, token: 'wrong' })).rejects.toMatchObject({ code: ErrorCode.UNAUTHENTICATED, message: 'wrong cluster token' });
    const raw = new Client(cluster.address, channel);
    const err = await new Promise<ServiceError>((resolve) =>
      raw.makeUnaryRequest('/muster.v1.ClusterService/ListNodes', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new Metadata(), (e) => resolve(e!)),
    );
    raw.close();
    expect(err.code).toBe(16); // UNAUTHENTICATED
    expect(err.details).toMatch(/missing cluster token/);
  });

  it('refuses agents without the right token and registers nothing', async () => {
    for (const md of [new Metadata(), tokenMetadata('wrong')]) {
      const { error } = await agentExchange(cluster.address, md, [encode(goodRegister('intruder'))]);
      expect(error?.code).toBe(16);
    }
    const sdk = await cluster.connect();
    await expect(sdk.node('intruder')).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    sdk.close();
  });

  it('accepts a well-formed registration (so the refusals below are about the fields)', async () => {
    const { error, received } = await agentExchange(cluster.address, tokenMetadata(token), [encode(goodRegister('probe-ok'))], { cancelOnReply: true });
    expect(received).toHaveLength(1);
    expect(HeadMessage.decode(received[0]!).msg?.$case).toBe('registered');
    expect(error?.code).toBe(1); // CANCELLED: ended by us, not refused
  });

  const cases: Array<[string, (r: Register) => void, RegExp]> = [
    ['a negative CPU count (as a uint32 on the wire: 2^32-4)', (r) => { r.inventory!.cpuCores = 2 ** 32 - 4; }, /inventory\.cpuCores: more than 16384 cores is absurd/],
    ['a negative NUMA node', (r) => { r.inventory!.gpus[0]!.numaNode = -2; }, /inventory\.gpus\[0\]\.numaNode/],
    ['no GPUs listed but a topology for one', (r) => { r.inventory!.gpus = []; r.inventory!.topology!.links = ['X', 'X']; }, /inventory/],
    ['absurd GPU memory', (r) => { r.inventory!.gpus[0]!.memoryMib = 9e12; }, /inventory\.gpus\[0\]\.memoryMib: .*absurd/],
    ['negative custom resource', (r) => { r.inventory!.customResources = { 'example.com/fpga': -1 }; }, /inventory\.customResources\.example\.com\/fpga: must not be negative/],
    ['link matrix of the wrong size', (r) => { r.inventory!.topology!.links = ['X', 'NV4']; }, /inventory\.topology\.links: expected 1×1=1 entries/],
    ['unknown link kind', (r) => { r.inventory!.topology!.links = ['NVX']; }, /inventory\.topology\.links\[0\]/],
    ['bad node id', (r) => { r.nodeId = '-bad id-'; }, /nodeId: must be 1-63/],
    ['bad label key', (r) => { r.labels = { 'no spaces allowed': 'x' }; }, /labels/],
    ['bad taint effect', (r) => { r.taints = [{ key: 'spot', value: '', effect: 'Sometimes' }]; }, /taints\[0\]\.effect/],
  ];
  for (const [name, mutate, field] of cases) {
    it(`refuses a registration with ${name}, naming the field`, async () => {
      const r = goodRegister(`bad-${name.length}`);
      mutate(r);
      const { error } = await agentExchange(cluster.address, tokenMetadata(token), [encode(r)]);
      expect(error?.code).toBe(3); // INVALID_ARGUMENT
      expect(error?.details).toMatch(field);
      expect(error?.metadata.get('muster-error-code')).toEqual([ErrorCode.INVALID_ARGUMENT]);
    });
  }

  it('refuses fields of the wrong wire type and undecodable bytes', async () => {
    // Field 1 (register, a message) sent as a varint: the decoder drops it.
    const wrongType = await agentExchange(cluster.address, tokenMetadata(token), [Buffer.from([0x08, 0x05])]);
    expect(wrongType.error?.code).toBe(3);
    expect(wrongType.error?.details).toMatch(/first message on the agent stream must be "register"/);
    // node_id (a string) sent as a varint inside a valid register.
    const inner = Buffer.from([0x0a, 0x02, 0x08, 0x07]);
    const wrongField = await agentExchange(cluster.address, tokenMetadata(token), [inner]);
    expect(wrongField.error?.code).toBe(3);
    expect(wrongField.error?.details).toMatch(/nodeId/);
    const garbage = await agentExchange(cluster.address, tokenMetadata(token), [Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])]);
    expect(garbage.error).toBeDefined();
    expect(garbage.error?.code).not.toBe(0);
  });

  it('refuses an oversized message', async () => {
    const r = goodRegister('huge');
    r.inventory!.hostname = 'x'.repeat(5 * 1024 * 1024);
    const { error } = await agentExchange(cluster.address, tokenMetadata(token), [encode(r)]);
    expect(error?.code).toBe(8); // RESOURCE_EXHAUSTED
    expect(error?.details).toMatch(/larger than max/);
  });

  it('keeps serving the registered nodes through all of that', async () => {
    const ids = await aliveIds();
    expect(ids).toContain('node-1');
    expect(ids).toContain('node-2');
    expect(ids.filter((id) => id.startsWith('bad-') || id === 'huge' || id === 'intruder')).toEqual([]);
  });

  it('a worker started with a wrong token says so and does not register', async () => {
    // By file: the kit refuses a secret on a command line (--token). This --token-file comes after, and wins over, the kit's own.
    const wrong = join(cluster.dataDir, 'wrong-token');
    await writeFile(wrong, 'wrong'.repeat(8), { mode: 0o600 });
    await expect(cluster.addWorker({ nodeId: 'wrong-token', args: ['--token-file', wrong] }, { readyTimeoutMs: 2_000 })).rejects.toThrow(/wrong cluster token/);
    expect(await aliveIds()).not.toContain('wrong-token');
  });
});

describe('the head refuses a weak token file at start', () => {
  it.each([
    ['empty', ''],
    ['whitespace-only', ' \n\t\n'],
    ['short', 'letmein\n'],
  ])('an %s token file: exits non-zero naming the file, serves nothing', async (_what, content) => {
    const dir = await tempDir('muster-weak-token-');
    try {
      const tokenFile = join(dir.path, 'token');
      await writeFile(tokenFile, content, { mode: 0o600 });
      const head = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = execFile(
          process.execPath,
          [headBin, '--listen', '127.0.0.1:0', '--data-dir', join(dir.path, 'data'), '--token-file', tokenFile, '--metrics-listen', '', '--insecure'],
          { timeout: 20_000 },
          (_err, stdout, stderr) => resolve({ code: child.exitCode, out: stdout + stderr }),
        );
      });
      expect(head.code).toBe(1);
      expect(head.out).toContain('head failed to start');
      expect(head.out).toContain(tokenFile);
      expect(head.out).toMatch(/at least 32 bytes are required/);
      expect(head.out).not.toContain('head ready');
    } finally {
      await dir.remove();
    }
  });
});
