/**
 * The other end of the raw NATS request/reply floor (floor.ts): a process that
 * answers every request on its subject (a queue group, so several share the
 * load as a replica group's replicas do) with a one-byte msgpack `null`, the
 * answer a no-op `serve()` replica gives, through the same nats.js client and
 * connection options (connectNats) as every Muster process. Its NATS user
 * comes in BENCH_NATS_ACCESS (environment, never argv); says "ready" over IPC.
 */
import { connectNats } from '@muster/common';
import type { NatsAccess } from '@muster/proto';

const access = JSON.parse(process.env.BENCH_NATS_ACCESS!) as NatsAccess;
const subject = process.env.BENCH_SUBJECT!;
const NULL = Uint8Array.of(0xc0);
const nc = await connectNats(access, 'peers-floor-responder');
nc.subscribe(subject, { queue: 'floor', callback: (_err, msg) => void msg.respond(NULL) });
await nc.flush();
process.send?.('ready');
const stop = () => void nc.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('disconnect', stop);
