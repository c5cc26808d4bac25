// The one pagination helper: DynamoDB's LastEvaluatedKey handed to callers as an opaque
// cursor, and a cursor handed back checked before it becomes an ExclusiveStartKey.
//
// A cursor names the listing it came from and carries the start key; decoding checks both
// against the route's own key schema. A cursor from another listing, or one edited by hand, is
// then the caller's mistake (400 naming the parameter) instead of a DynamoDB validation error
// (a 500) or a look into another partition. A well-formed start key is only a position in a
// listing the caller may read anyway, so the cursor needs no secret to be safe.
import * as z from 'zod';
import { InvalidInputError } from '../errors.js';

export type StartKey = Record<string, string | number>;

const Envelope = z.strictObject({ l: z.string(), k: z.record(z.string(), z.unknown()) });

/** `listing` names what is being paged through, e.g. `profiles` or `profiles/web/versions`. */
export function encodeCursor(listing: string, key: StartKey): string {
  return Buffer.from(JSON.stringify({ l: listing, k: key }), 'utf8').toString('base64url');
}

/** Where the next page starts, or undefined for the first page. */
export function decodeCursor<S extends z.ZodType<StartKey>>(
  cursor: string | undefined,
  listing: string,
  key: S,
): z.output<S> | undefined {
  if (cursor === undefined) return undefined;
  const refuse = (message: string): never => {
    throw new InvalidInputError('cursor is not one this API returned', [{ path: 'cursor', message }]);
  };
  if (!/^[A-Za-z0-9_-]{1,2048}$/.test(cursor)) refuse('not a cursor returned by a previous page');
  let envelope: z.output<typeof Envelope> | undefined;
  try {
    const parsed = Envelope.safeParse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
    if (parsed.success) envelope = parsed.data;
  } catch {
    // not JSON: refused below
  }
  if (envelope === undefined) return refuse('not a cursor returned by a previous page');
  if (envelope.l !== listing) return refuse(`a cursor of another listing (${envelope.l}), not of ${listing}`);
  const start = key.safeParse(envelope.k);
  if (!start.success) return refuse(`not a position in ${listing}`);
  return start.data;
}

/** The cursor for the page after this one, when DynamoDB says there is one. */
export function nextCursor(
  listing: string,
  lastKey: Record<string, unknown> | undefined,
): { nextCursor?: string } {
  return lastKey === undefined ? {} : { nextCursor: encodeCursor(listing, lastKey as StartKey) };
}
