/** Calls in progress, per process and per principal: slots are taken on entry, released on close. */
export class ConcurrencyLimiter {
  private total = 0;
  private readonly perKey = new Map<string, number>();

  /** `count` slots at once (one per JSON-RPC call), or undefined when either bound would be passed. */
  acquire(key: string, maxTotal: number, maxPerKey: number, count = 1): { release(): void } | undefined {
    const current = this.perKey.get(key) ?? 0;
    if (this.total + count > maxTotal || current + count > maxPerKey) return undefined;
    this.total += count;
    this.perKey.set(key, current + count);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total -= count;
        const left = (this.perKey.get(key) ?? count) - count;
        if (left <= 0) this.perKey.delete(key);
        else this.perKey.set(key, left);
      },
    };
  }

  /** Slots held in all, and by `key`. */
  held(key?: string): number {
    return key === undefined ? this.total : (this.perKey.get(key) ?? 0);
  }

  get inProgress(): number {
    return this.total;
  }
}
