import type { Config } from '../config/schema.js';

/**
 * A value derived from the configuration alone (compiled proxy trust, Host and Origin guards),
 * computed once per configuration instead of once per request. A reload brings a new config object,
 * so it gets its own value; the old one goes with the old config.
 */
export function perConfig<T>(derive: (config: Config) => T): (config: Config) => T {
  const derived = new WeakMap<Config, T>();
  return (config) => {
    let value = derived.get(config);
    if (value === undefined) {
      value = derive(config);
      derived.set(config, value);
    }
    return value;
  };
}
