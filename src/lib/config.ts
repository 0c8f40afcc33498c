// Configuration parsing shared by every component: one spec per component lists its options, each
// with a command-line flag, an optional environment variable, an io-ts codec that decodes the raw
// string, a default (absent = required) and a one-line doc. Flags win over env, env over defaults.
// A renamed option keeps its old spellings as deprecated aliases (a warning, never a break).
//
// Pure core (parseConfig, renderHelp, the string codecs) returns Either with a ConfigError that
// names every bad option at once; loadConfigOrExit is the one effectful edge: it prints the
// problems (or --help) and exits with code 2 (0 for --help), so a bad Deployment fails loudly at
// start-up instead of running with a half-understood configuration.
import * as t from 'io-ts';
import { left, right, type Either } from 'fp-ts/lib/Either.js';
import ipaddr from 'ipaddr.js';

export interface Option<A> {
  /** Long flag, e.g. '--node-name'. Accepted as `--flag value` and `--flag=value`. */
  readonly flag: string;
  /** Environment variable read when the flag is absent. */
  readonly env?: string;
  /** Decodes the raw string. Its name appears in error messages, so make it say what is expected. */
  readonly codec: t.Decoder<unknown, A>;
  /** Used when neither flag nor env is given. `required: true` instead means there is none. */
  readonly default?: A;
  readonly required?: boolean;
  /** A bare `--flag` means "true" (only for boolean options). */
  readonly boolean?: boolean;
  readonly doc: string;
  /**
   * Deprecated spellings still accepted, so that renaming an option breaks no Deployment. The
   * primary flag wins over an alias flag, any flag over any env variable, and the primary env
   * over an alias env; an alias that disagrees with the primary at the same level is a problem.
   */
  readonly aliases?: readonly Alias[];
}

export interface Alias {
  readonly flag: string;
  readonly env?: string;
}

export type Spec = Record<string, Option<unknown>>;
export type ConfigOf<S extends Spec> = { readonly [K in keyof S]: S[K] extends Option<infer A> ? A : never };

export interface ConfigError {
  readonly _tag: 'ConfigError';
  /** One line per problem, each naming the flag and env variable it concerns. */
  readonly problems: readonly string[];
}

const configError = (problems: readonly string[]): ConfigError => ({ _tag: 'ConfigError', problems });

/**
 * Declares an option; the identity function, there to infer A from the codec. For an option with
 * neither default nor `required`, write the type: `option<string | undefined>({...})`.
 */
export function option<A>(o: Option<A>): Option<A> {
  return o;
}

function describeSource(o: Option<unknown>): string {
  const primary = o.env === undefined ? o.flag : `${o.flag} (env ${o.env})`;
  const aliases = (o.aliases ?? []).map((a) => (a.env === undefined ? a.flag : `${a.flag}, env ${a.env}`));
  return aliases.length === 0 ? primary : `${primary} [deprecated alias ${aliases.join('; ')}]`;
}

/** Splits argv into primary flag → raw value (alias flags apart); unknown flags are problems. */
function readFlags(
  spec: Spec,
  argv: readonly string[],
): { values: Map<string, string>; aliasValues: Map<string, string>; problems: string[] } {
  const byFlag = new Map<string, { o: Option<unknown>; alias: boolean }>();
  for (const o of Object.values(spec)) {
    byFlag.set(o.flag, { o, alias: false });
    for (const a of o.aliases ?? []) byFlag.set(a.flag, { o, alias: true });
  }
  const values = new Map<string, string>();
  const aliasValues = new Map<string, string>();
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      problems.push(`unexpected argument ${JSON.stringify(arg)} (options are --name value or --name=value)`);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const found = byFlag.get(flag);
    if (found === undefined) {
      problems.push(`unknown option ${flag}`);
      continue;
    }
    const { o, alias } = found;
    const into = alias ? aliasValues : values;
    if (eq !== -1) {
      into.set(o.flag, arg.slice(eq + 1));
    } else if (o.boolean === true && (i + 1 >= argv.length || argv[i + 1]!.startsWith('--'))) {
      into.set(o.flag, 'true');
    } else if (i + 1 < argv.length) {
      into.set(o.flag, argv[++i]!);
    } else {
      problems.push(`${flag} needs a value`);
    }
  }
  return { values, aliasValues, problems };
}

/**
 * The raw value of one option: primary flag, alias flag, primary env, alias env. Disagreeing
 * spellings at the same level are reported rather than silently resolved.
 */
function rawValue(
  o: Option<unknown>,
  flags: { values: Map<string, string>; aliasValues: Map<string, string> },
  env: Readonly<Record<string, string | undefined>>,
  problems: string[],
): string | undefined {
  const aliases = o.aliases ?? [];
  const fromFlag = flags.values.get(o.flag);
  const fromAliasFlag = flags.aliasValues.get(o.flag);
  if (fromFlag !== undefined && fromAliasFlag !== undefined && fromFlag !== fromAliasFlag) {
    problems.push(
      `${o.flag} ${JSON.stringify(fromFlag)} and its deprecated alias ${aliases.map((a) => a.flag).join('/')} ${JSON.stringify(fromAliasFlag)} disagree: give only ${o.flag}`,
    );
  }
  if (fromFlag !== undefined || fromAliasFlag !== undefined) return fromFlag ?? fromAliasFlag;
  const fromEnv = o.env === undefined ? undefined : env[o.env];
  const aliasEnv = aliases.find((a) => a.env !== undefined && env[a.env] !== undefined)?.env;
  const fromAliasEnv = aliasEnv === undefined ? undefined : env[aliasEnv];
  if (fromEnv !== undefined && fromAliasEnv !== undefined && fromEnv !== fromAliasEnv) {
    problems.push(
      `env ${o.env} ${JSON.stringify(fromEnv)} and its deprecated alias ${aliasEnv} ${JSON.stringify(fromAliasEnv)} disagree: set only ${o.env}`,
    );
  }
  return fromEnv ?? fromAliasEnv;
}

/** Which deprecated spellings argv and env use, one line each (loadConfigOrExit prints them). */
export function deprecatedUses(
  spec: Spec,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): string[] {
  const notes: string[] = [];
  for (const o of Object.values(spec)) {
    for (const a of o.aliases ?? []) {
      if (argv.some((arg) => arg === a.flag || arg.startsWith(`${a.flag}=`))) {
        notes.push(`${a.flag} is deprecated: use ${o.flag}`);
      }
      if (a.env !== undefined && env[a.env] !== undefined) {
        notes.push(`env ${a.env} is deprecated: use ${o.env ?? o.flag}`);
      }
    }
  }
  return notes;
}

function explain(errors: t.Errors, codec: t.Decoder<unknown, unknown>): string {
  const custom = errors.map((e) => e.message).find((m) => m !== undefined);
  const value = errors[0]?.value;
  return `${custom ?? `expected ${codec.name}`}, got ${JSON.stringify(value)}`;
}

/**
 * Reads every option from argv (without the node/script entries) and env, decodes it, then runs
 * `check` over the whole result for rules that span options. Every problem is reported, not
 * only the first.
 */
export function parseConfig<S extends Spec>(
  spec: S,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  check?: (config: ConfigOf<S>) => readonly string[],
): Either<ConfigError, ConfigOf<S>> {
  const flags = readFlags(spec, argv);
  const problems = flags.problems;
  const out: Record<string, unknown> = {};
  for (const [key, o] of Object.entries(spec)) {
    const raw = rawValue(o, flags, env, problems);
    if (raw === undefined || (raw === '' && o.required === true)) {
      if (o.required === true) problems.push(`${describeSource(o)} is required: ${o.doc}`);
      else out[key] = o.default;
      continue;
    }
    const decoded = o.codec.decode(raw);
    if (decoded._tag === 'Left') problems.push(`${describeSource(o)}: ${explain(decoded.left, o.codec)}`);
    else out[key] = decoded.right;
  }
  if (problems.length > 0) return left(configError(problems));
  const config = out as ConfigOf<S>;
  const crossProblems = check?.(config) ?? [];
  return crossProblems.length > 0 ? left(configError(crossProblems)) : right(config);
}

/** The --help text: one paragraph per option with its flag, env variable and default. */
export function renderHelp(spec: Spec, usage: string): string {
  const lines = [usage, '', 'Options (flags win over environment variables):'];
  for (const o of Object.values(spec)) {
    const dflt =
      o.required === true
        ? 'required'
        : o.default === undefined
          ? 'optional'
          : `default ${JSON.stringify(o.default)}`;
    lines.push(`  ${o.flag}${o.env === undefined ? '' : `, env ${o.env}`}  (${o.codec.name}; ${dflt})`);
    lines.push(`      ${o.doc}`);
    for (const a of o.aliases ?? []) {
      lines.push(`      deprecated alias: ${a.flag}${a.env === undefined ? '' : `, env ${a.env}`}`);
    }
  }
  return lines.join('\n');
}

/**
 * Effectful edge for `main.ts` files: parses process.argv/env, prints --help (exit 0) or every
 * problem (exit 2) to stderr, and returns the config otherwise.
 */
export function loadConfigOrExit<S extends Spec>(
  spec: S,
  usage: string,
  check?: (config: ConfigOf<S>) => readonly string[],
  argv: readonly string[] = process.argv.slice(2),
  env: Readonly<Record<string, string | undefined>> = process.env,
): ConfigOf<S> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${renderHelp(spec, usage)}\n`);
    process.exit(0);
  }
  for (const note of deprecatedUses(spec, argv, env)) process.stderr.write(`warning: ${note}\n`);
  const parsed = parseConfig(spec, argv, env, check);
  if (parsed._tag === 'Right') return parsed.right;
  process.stderr.write(
    `invalid configuration:\n${parsed.left.problems.map((p) => `  - ${p}`).join('\n')}\n(see --help)\n`,
  );
  process.exit(2);
}

// ---- codecs from strings ----------------------------------------------------------------------

/** Builds a codec from a string parser; `expected` is both its name and its error message. */
export function fromString<A>(
  expected: string,
  parse: (raw: string) => A | undefined,
): t.Type<A, unknown, unknown> {
  return new t.Type<A, unknown, unknown>(
    expected,
    (u): u is A => parse(String(u)) !== undefined,
    (u, c) => {
      if (typeof u !== 'string') return t.failure(u, c, `expected ${expected}`);
      const parsed = parse(u.trim());
      return parsed === undefined ? t.failure(u, c, `expected ${expected}`) : t.success(parsed);
    },
    (a) => a,
  );
}

export const NonEmptyString = fromString('a non-empty string', (s) => (s === '' ? undefined : s));

/** A value that `codec` (a refinement of string) admits, e.g. a node or an interface name. */
export function checkedString(
  expected: string,
  codec: t.Type<string, string, unknown>,
): t.Type<string, unknown, unknown> {
  return fromString(expected, (s) => (codec.is(s) ? s : undefined));
}

export const BooleanFromString = fromString('true or false', (s) =>
  ['true', '1', 'yes'].includes(s.toLowerCase())
    ? true
    : ['false', '0', 'no'].includes(s.toLowerCase())
      ? false
      : undefined,
);

/** An integer in [min, max]; accepts decimal and 0x-prefixed hex (for marks and masks). */
export function intFromString(min: number, max: number): t.Type<number, unknown, unknown> {
  return fromString(`an integer from ${min} to ${max}`, (s) => {
    const n = /^0x[0-9a-f]+$/i.test(s)
      ? Number.parseInt(s.slice(2), 16)
      : /^-?\d+$/.test(s)
        ? Number(s)
        : NaN;
    return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
  });
}

export const PortFromString = intFromString(1, 65535);

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** A duration in milliseconds: "250", "250ms", "1.5s", "2m". */
export function durationMsFromString(minMs: number, maxMs: number): t.Type<number, unknown, unknown> {
  return fromString(`a duration from ${minMs}ms to ${maxMs}ms, like 100ms or 5s`, (s) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s);
    if (m === null) return undefined;
    const ms = Math.round(Number(m[1]) * durationUnits[m[2] ?? 'ms']!);
    return ms >= minMs && ms <= maxMs ? ms : undefined;
  });
}

/** Comma-separated items, each decoded by `item`; empty string = empty list. */
function listFromString<A>(
  expected: string,
  item: (s: string) => A | undefined,
): t.Type<A[], unknown, unknown> {
  return fromString(`a comma-separated list of ${expected}`, (s) => {
    const parts = s === '' ? [] : s.split(',').map((p) => p.trim());
    const items: A[] = [];
    for (const part of parts) {
      const decoded = item(part);
      if (decoded === undefined) return undefined;
      items.push(decoded);
    }
    return items;
  });
}

/** host:port entries, e.g. "kafka-0.kafka:9092,kafka-1.kafka:9092". At least one. */
export const BrokerListFromString = fromString('a comma-separated list of host:port', (s) => {
  const parts = s.split(',').map((p) => p.trim());
  const ok = parts.every((p) => {
    const m = /^(\[[0-9a-f:]+\]|[A-Za-z0-9.-]+):(\d+)$/i.exec(p);
    return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
  });
  return ok && parts.length > 0 ? parts : undefined;
});

/** IPv4/IPv6 CIDRs in canonical network form ("10.0.0.0/8", not "10.1.2.3/8"). */
export const CidrListFromString = listFromString('CIDRs like 10.0.0.0/8', (p) => {
  if (!ipaddr.isValidCIDR(p)) return undefined;
  const [addr, len] = ipaddr.parseCIDR(p);
  const network =
    addr.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(p).toString()
      : ipaddr.IPv6.networkAddressFromCIDR(p).toString();
  return network === addr.toString() ? `${network}/${len}` : undefined;
});
