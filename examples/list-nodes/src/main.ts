/**
 * The smallest Muster program: connect with the SDK, list the nodes and
 * their GPUs, and show the last cluster events.
 *
 *   node dist/main.js   # after `muster up` (its context), or with the MUSTER_* variables it prints
 */
import { connect, connectOptionsFromEnv } from '@muster/sdk';

// MUSTER_ADDRESS, MUSTER_TLS_CA/CERT/KEY (what `muster up` prints), else the current context of ~/.muster/config.yaml.
const cluster = await connect(connectOptionsFromEnv());

try {
  const info = await cluster.info();
  console.log(`connected to head ${info.headId} (${info.store} store)`);
  const nodes = await cluster.nodes();
  for (const node of nodes) {
    const islands = node.nvlinkIslands.map((i) => i.length).join('+') || '-';
    const gpu = node.gpus[0];
    console.log(
      `${node.id.padEnd(12)} ${node.state.padEnd(6)} ${String(node.gpus.length).padStart(2)} GPU(s)` +
        (gpu ? ` ${gpu.name}, ${Math.round(gpu.memoryMiB / 1024)} GiB each, NVLink islands ${islands}` : ''),
    );
  }
  const alive = nodes.filter((n) => n.state === 'alive');
  console.log(`${alive.length}/${nodes.length} nodes alive, ${alive.reduce((s, n) => s + n.gpus.length, 0)} GPUs`);

  // Replay the retained events, stop after the ones that already happened.
  const stop = new AbortController();
  setTimeout(() => stop.abort(), 300).unref();
  console.log('recent events:');
  for await (const e of cluster.events({ replay: true, signal: stop.signal })) {
    console.log(`  ${e.time.toISOString()} ${e.kind.padEnd(16)} ${e.message}`);
  }
  if (alive.length === 0) {
    console.error('no alive node: is a worker running?');
    process.exitCode = 1;
  }
} finally {
  cluster.close();
}
