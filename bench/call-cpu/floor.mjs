// bench/call-cpu: the raw NATS request/reply floor's two ends, as bench/peers/floor.ts measures it
// (the same nats.js client and connectNats options, an all-subjects user, a queue group of two
// responders answering a msgpack null; the caller publishes under one wildcard inbox
// subscription, a map from token to waiter, no timer). BENCH_ROLE: "responder" or "caller";
// the caller's rounds are caller.mjs's (rounds.mjs).
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { serveRounds } from './rounds.mjs';

const { connectNats } = await import(pathToFileURL(`${process.env.BENCH_TREE}/packages/common/dist/index.js`).href);
const access = JSON.parse(process.env.BENCH_ACCESS);
const SUBJECT = 'bench.floor';
const nc = await connectNats(access, `bench-floor-${process.env.BENCH_ROLE}`);
if (process.env.BENCH_ROLE === 'responder') {
  const NULL = Uint8Array.of(0xc0);
  nc.subscribe(SUBJECT, { queue: 'floor', callback: (_err, msg) => void msg.respond(NULL) });
  await nc.flush();
  process.send('ready');
  const stop = () => void nc.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
} else {
  const ONE = Uint8Array.of(0x01);
  const prefix = `_INBOX.floor-${randomUUID()}.`;
  const waiting = new Map();
  let next = 0;
  nc.subscribe(`${prefix}*`, {
    callback: (err, msg) => {
      const token = msg.subject.slice(prefix.length);
      const done = err ? undefined : waiting.get(token);
      waiting.delete(token);
      done?.(msg.data);
    },
  });
  await nc.flush();
  const call = () => new Promise((resolve) => {
    const token = (next++).toString(36);
    waiting.set(token, resolve);
    nc.publish(SUBJECT, ONE, { reply: prefix + token });
  });
  await serveRounds(call, () => nc.close());
}
