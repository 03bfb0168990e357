/**
 * Metric label values, apart from the metric registry: the access gate labels what it records
 * without loading prom-client, which a stdio process never needs.
 */

/** A root label value: configured names only; anything else collapses to one value. */
export function rootLabel(root: string | null): string {
  return root ?? 'none';
}
