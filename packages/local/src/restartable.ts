/**
 * A server process the chaos tests can crash and bring back on the same
 * ports and data: `launch` starts one instance and resolves once it serves;
 * `kill`/`start`/`restart` swap instances, `process` is the current one.
 */
import type { ManagedProcess } from './procs.js';

export type KillSignal = 'SIGTERM' | 'SIGKILL';

export interface Restartable {
  /** The current process (a new one after each start). */
  readonly process: ManagedProcess;
  /** Ends the process (SIGKILL: a crash; SIGTERM: a clean stop), keeping its ports and data. */
  kill(signal?: KillSignal): Promise<void>;
  /** Starts it again on the same ports and data, and waits until it serves. */
  start(): Promise<void>;
  /** kill(signal) then start(). */
  restart(opts?: { signal?: KillSignal }): Promise<void>;
}

export async function restartable(name: string, launch: () => Promise<ManagedProcess>): Promise<Restartable> {
  let proc = await launch();
  const kill = async (signal: KillSignal = 'SIGKILL') => {
    if (signal === 'SIGTERM') return proc.stop(2_000);
    proc.signal('SIGKILL');
    await proc.exited;
  };
  const start = async () => {
    if (proc.running) throw new Error(`${name} is running: kill() it first`);
    proc = await launch();
  };
  return {
    get process() {
      return proc;
    },
    kill,
    start,
    async restart(o = {}) {
      await kill(o.signal);
      await start();
    },
  };
}
