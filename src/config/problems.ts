/** What is wrong with a configuration, by key. */

export interface ConfigProblem {
  /** The key, in the form `roots[1].write[0]`, or the file for problems that have no key. */
  readonly key: string;
  readonly message: string;
}

/** A configuration that cannot be used. Its message names every bad key, the value and why. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly problems: readonly ConfigProblem[],
    readonly source: string | null,
  ) {
    super(
      `invalid configuration${source ? ` in ${source}` : ''}:\n${problems.map((p) => `  ${p.key}: ${p.message}`).join('\n')}`,
    );
  }
}
