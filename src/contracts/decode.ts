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
 * Decode a JSON message. For a union tagged by `type`, pass `byType` so that the error names the
 * fields of the intended event instead of every member of the union.
 */
export function decodeJson<C extends t.Mixed>(
  codec: C,
  value: Buffer | string | null,
  byType?: ReadonlyMap<string, t.Mixed>,
): Either<DecodeFailure, t.TypeOf<C>> {
  const parsed = parseJson(value);
  if (parsed._tag === 'Left') return parsed;
  const input = parsed.right;
  if (byType !== undefined) {
    const type = typeof input === 'object' && input !== null ? (input as { type?: unknown }).type : undefined;
    const member = typeof type === 'string' ? byType.get(type) : undefined;
    if (member === undefined) return left(failure(`unknown event type ${JSON.stringify(type)}`));
    return decodeWith(member, input);
  }
  return decodeWith(codec, input);
}
