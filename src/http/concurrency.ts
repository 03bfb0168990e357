/** Requests in progress, per process and per principal; a slot is taken on entry, released on close. */
export class ConcurrencyLimiter {
  private total = 0;
  private readonly perKey = new Map<string, number>();

  /** A slot, or undefined when either bound is reached. */
  acquire(key: string, maxTotal: number, maxPerKey: number): { release(): void } | undefined {
    const current = this.perKey.get(key) ?? 0;
    if (this.total >= maxTotal || current >= maxPerKey) return undefined;
    this.total += 1;
    this.perKey.set(key, current + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total -= 1;
        const left = (this.perKey.get(key) ?? 1) - 1;
        if (left === 0) this.perKey.delete(key);
        else this.perKey.set(key, left);
      },
    };
  }

  get inProgress(): number {
    return this.total;
  }
}
