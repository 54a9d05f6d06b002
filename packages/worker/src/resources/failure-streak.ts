/**
 * nvidia-smi failing, logged once a streak (gpu-reader.ts, compute-apps.ts):
 * the streak's first failure warns with `warning`, its end says once that
 * GPU metrics are back; the failures between log nothing.
 */
export interface StreakLog {
  warn(o: object, msg?: string): void;
  info(o: object, msg?: string): void;
}

export class FailureStreak {
  private on = false;

  constructor(
    private readonly log: StreakLog,
    private readonly warning: string,
  ) {}

  /** Whether the last outcome was a failure. */
  get failing(): boolean {
    return this.on;
  }

  failed(why: string): void {
    if (!this.on) this.log.warn({ err: why }, this.warning);
    this.on = true;
  }

  ok(): void {
    if (this.on) this.log.info({}, 'nvidia-smi answers again: GPU metrics are reported');
    this.on = false;
  }
}
