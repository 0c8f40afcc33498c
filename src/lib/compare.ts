// The one ascending order of texts in everything we emit: by UTF-16 code units, as `<` compares.
// Not localeCompare: its result depends on the ICU data and locale of the machine, and the
// projection's outputs must be byte-identical on every machine. Pure. (Strings only, so the
// comparison stays monomorphic in the projection's hot paths; bigints have compareBig.)

export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Ascending bigints (address arithmetic). */
export function compareBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
