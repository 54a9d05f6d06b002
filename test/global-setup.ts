// Integration suite guard: after every test file has run, no process that the
// suite started (etcd, nats-server, head, worker, shard) may still be alive.
// Processes started by the test kit carry MUSTER_TEST_RUN=<this run's id> in
// their environment, which is how they are found in /proc.
import { randomUUID } from 'node:crypto';
import { findTaggedProcesses, killTagged } from '@muster/local';

export default function setup() {
  const runId = randomUUID();
  process.env.MUSTER_TEST_RUN = runId;
  return async () => {
    const left = await findTaggedProcesses(runId);
    if (left.length > 0) {
      await killTagged(runId);
      throw new Error(
        `integration tests left ${left.length} process(es) running:\n` +
          left.map((p) => `  pid ${p.pid}: ${p.cmdline}`).join('\n'),
      );
    }
  };
}
