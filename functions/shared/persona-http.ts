// The HTTP edge of the persona routes: a persona document as the body (JSON or YAML, with the
// document defences and the persona limits) and the version an If-Match names.
import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { IfMatch } from '../../core/api/schemas.js';
import { InvalidInputError } from '../../core/errors.js';
import { readPersona } from '../../core/persona/read.js';
import type { Persona } from '../../core/persona/schema.js';
import { type ApiEvent, documentSource, header, requireDocumentType } from './http.js';

export type PersonaEvent<P = Record<string, never>, Q = Record<string, never>> = ApiEvent<P, Q> & {
  /** The request body read as a Persona. */
  persona?: Persona;
};

/** Reads the body as a Persona document, JSON or YAML, with every problem named. */
export function personaBody<E extends PersonaEvent<unknown, unknown>>(): MiddlewareObj<
  E,
  APIGatewayProxyResult
> {
  return {
    name: 'personaBody',
    before: async (request) => {
      const event = request.event;
      requireDocumentType(event);
      const source = documentSource(event);
      const blank =
        typeof source === 'string'
          ? source.trim() === ''
          : Buffer.from(source).toString('latin1').trim() === '';
      if (blank) {
        throw new InvalidInputError('the request needs a persona document as its body', [
          { path: 'body', message: 'required' },
        ]);
      }
      event.persona = await readPersona(source, { source: 'body' });
    },
  };
}

/** The version If-Match names, or undefined when there is none; a malformed one is a 400. */
export function ifMatchVersion(event: ApiEvent<unknown, unknown>): number | undefined {
  const raw = header(event, 'if-match');
  if (raw === undefined) return undefined;
  const parsed = IfMatch.safeParse(raw);
  if (!parsed.success) {
    throw new InvalidInputError('If-Match must name a version', [
      {
        path: 'headers.if-match',
        message: `expected a version number such as "3", got ${JSON.stringify(raw)}`,
      },
    ]);
  }
  return parsed.data;
}
