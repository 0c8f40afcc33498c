// The one ascending order of texts (and bigints, numbers) in everything we emit: by UTF-16 code
// units, as `<` compares. Not localeCompare: its result depends on the ICU data and locale of the
// machine, and the projection's outputs must be byte-identical on every machine. Pure.

export function compare<T extends string | number | bigint>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders values by one key (e.g. records by name). */
export function byKey<T, K extends string | number | bigint>(key: (x: T) => K): (a: T, b: T) => number {
  return (a, b) => compare(key(a), key(b));
}
