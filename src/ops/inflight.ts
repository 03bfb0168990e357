/**
 * Work in progress, and a bounded wait for none to be left: what every drain in mcpd needs (the
 * HTTP exchanges, the stdio requests, the accesses still to be audited).
 */
export class InFlight<T> {
  private readonly items = new Set<T>();
  private waiters: (() => void)[] = [];

  add(item: T): void {
    this.items.add(item);
  }

  delete(item: T): void {
    if (!this.items.delete(item) || this.items.size > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  get size(): number {
    return this.items.size;
  }

  /** Resolves when nothing is in flight, or after `timeoutMs`; says how much was left. */
  async whenEmpty(timeoutMs: number): Promise<{ remaining: number }> {
    if (this.items.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return { remaining: this.items.size };
  }
}
