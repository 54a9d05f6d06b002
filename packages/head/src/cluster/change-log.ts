/**
 * Which node records changed, by version: the registry's version moves by one
 * for every record added, replaced or removed, and this log keeps the id of
 * each step (the last `kept` of them). A view derived from the node set — the
 * placement group controller's scheduling state (controllers/pg-view.ts) —
 * asks what changed since the version it was derived at and replaces those
 * nodes alone; when the answer is no longer known (too old, or the records
 * were reloaded wholesale) it derives itself again from every node.
 */
export class ChangeLog {
  /** ids[i] is the id changed by step `from + i + 1`. */
  private readonly ids: string[] = [];
  private from = 0;
  private version = 0;

  constructor(private readonly kept = 8_192) {}

  /** The current version. */
  get current(): number {
    return this.version;
  }

  /** One record changed. */
  note(id: string): void {
    this.version++;
    this.ids.push(id);
    if (this.ids.length > this.kept) {
      const drop = this.ids.length - Math.floor(this.kept / 2);
      this.ids.splice(0, drop);
      this.from += drop;
    }
  }

  /** Records changed without saying which (a reload): whatever asks about an earlier version derives anew. */
  reset(): void {
    this.version++;
    this.ids.length = 0;
    this.from = this.version;
  }

  /** The ids changed after `version` (repeats possible), or undefined when that is no longer known. */
  since(version: number): string[] | undefined {
    if (version < this.from || version > this.version) return undefined;
    return this.ids.slice(version - this.from);
  }
}
