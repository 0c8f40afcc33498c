// Decoding at the edge: bytes from Kafka → typed values, or a DecodeFailure that says why.
// Pure. Consumers never see `unknown`; a failure goes to the dead-letter topic with `reason`.
import * as t from 'io-ts';
import { left, right, type Either } from 'fp-ts/lib/Either.js';

export interface DecodeFailure {
  readonly _tag: 'DecodeFailure';
  /** Human-readable, one line per problem, with the JSON path of each bad field. */
  readonly reason: string;
}

const failure = (reason: string): DecodeFailure => ({ _tag: 'DecodeFailure', reason });

function describe(errors: t.Errors): string {
  const lines = errors.slice(0, 5).map((e) => {
    const path = e.context
      .map((c) => c.key)
      .filter((k) => k !== '')
      .join('.');
    const expected = e.context[e.context.length - 1]?.type.name ?? 'value';
    return `${path || '<root>'}: expected ${expected}, got ${JSON.stringify(e.value)?.slice(0, 80)}`;
  });
  if (errors.length > 5) lines.push(`… and ${errors.length - 5} more`);
  return lines.join('; ');
}

export function decodeWith<C extends t.Mixed>(codec: C, input: unknown): Either<DecodeFailure, t.TypeOf<C>> {
  const result = codec.decode(input);
  return result._tag === 'Right' ? right(result.right as t.TypeOf<C>) : left(failure(describe(result.left)));
}

export function parseJson(value: Buffer | string | null): Either<DecodeFailure, unknown> {
  if (value === null) return left(failure('empty record value (tombstone) where a message was expected'));
  try {
    return right(JSON.parse(typeof value === 'string' ? value : value.toString('utf8')) as unknown);
  } catch (err) {
    return left(failure(`not JSON: ${(err as Error).message}`));
  }
}

/**
 * The schema versions a reader understands, by the record's top-level `schema` field. Every topic
 * carries one; a change that old readers would misread gets a new number, and a reader refuses a
 * number it does not know rather than read it as the one it knows.
 */
export interface SchemaVersion {
  readonly current: number;
  /** A record without `schema` is read as this version: records written before the topic had
   *  the field. Absent: such a record is refused. */
  readonly absentMeans?: number;
}

/** `input` with its schema checked (and filled in for an old record), or why it is refused. */
export function checkSchema(input: unknown, version: SchemaVersion): Either<DecodeFailure, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return left(failure(`<root>: expected an object, got ${JSON.stringify(input)?.slice(0, 80)}`));
  }
  const schema = (input as { schema?: unknown }).schema;
  if (schema === undefined && version.absentMeans !== undefined) {
    return right({ ...input, schema: version.absentMeans });
  }
  if (schema === version.current) return right(input);
  if (typeof schema === 'number' && Number.isInteger(schema) && schema > version.current) {
    return left(
      failure(
        `schema ${schema} is newer than this reader, which knows schema ${version.current}: ` +
          'the record was written by a newer version; upgrade this component to read it',
      ),
    );
  }
  return left(
    failure(`schema: expected ${version.current}, got ${JSON.stringify(schema)?.slice(0, 80) ?? 'nothing'}`),
  );
}

export interface DecodeOptions {
  /** For a union tagged by `type`: the member codec of each type, so that the error names the
   *  fields of the intended event instead of every member of the union. */
  readonly byType?: ReadonlyMap<string, t.Mixed>;
  readonly schema: SchemaVersion;
}

/** Decode a JSON message: its schema version first, then its fields. */
export function decodeJson<C extends t.Mixed>(
  codec: C,
  value: Buffer | string | null,
  options: DecodeOptions,
): Either<DecodeFailure, t.TypeOf<C>> {
  const parsed = parseJson(value);
  if (parsed._tag === 'Left') return parsed;
  return decodeParsed(codec, parsed.right, options);
}

/** decodeJson for a value already parsed from JSON (the CLI's log readers). */
export function decodeParsed<C extends t.Mixed>(
  codec: C,
  value: unknown,
  options: DecodeOptions,
): Either<DecodeFailure, t.TypeOf<C>> {
  const checked = checkSchema(value, options.schema);
  if (checked._tag === 'Left') return checked;
  const input = checked.right;
  const { byType } = options;
  if (byType !== undefined) {
    const type = (input as { type?: unknown }).type;
    const member = typeof type === 'string' ? byType.get(type) : undefined;
    if (member === undefined) return left(failure(`unknown event type ${JSON.stringify(type)}`));
    return decodeWith(member, input);
  }
  return decodeWith(codec, input);
}
