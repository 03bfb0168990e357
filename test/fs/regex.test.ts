import { describe, expect, it } from 'vitest';
import { McpdError } from '../../src/errors.js';
import { RegexPool } from '../../src/fs/regex.js';

describe('RegexPool', () => {
  it('serves any number of matches with at most its size of workers, reusing them', async () => {
    const pool = new RegexPool(2);
    try {
      const texts = Array.from({ length: 20 }, (_, i) => `line one\nneedle ${i}\nline three`);
      const results = await Promise.all(
        texts.map((text) => pool.match({ source: 'needle', flags: '' }, text, 10, 2000)),
      );
      expect(results.map((hits) => hits[0]?.line)).toEqual(texts.map(() => 2));
      expect(pool.workers).toBeLessThanOrEqual(2);
    } finally {
      await pool.close();
    }
  });

  it('stops a runaway pattern at its time budget and replaces the worker, so the next match still runs', async () => {
    const pool = new RegexPool(1);
    try {
      const slow = pool.match({ source: '^(a+)+$', flags: '' }, `${'a'.repeat(40)}b`, 10, 200);
      await expect(slow).rejects.toBeInstanceOf(McpdError);
      const next = await pool.match({ source: 'b$', flags: '' }, 'ab', 10, 2000);
      expect(next).toEqual([{ line: 1, text: 'ab' }]);
      expect(pool.workers).toBe(1);
    } finally {
      await pool.close();
    }
  });
});
