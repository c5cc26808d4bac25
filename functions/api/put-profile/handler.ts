import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import { etag, IfMatch, NameParams } from '../../../core/api/schemas.js';
import { InvalidInputError } from '../../../core/errors.js';
import type { Profile } from '../../../core/profile/schema.js';
import { putProfile } from '../../../core/profile/service.js';
import { type ApiEvent, apiErrors, header, json, parseRequest, profileBody } from '../../shared/http.js';
import { metrics, observability, stores } from '../../shared/runtime.js';

type Event = ApiEvent<{ name: string }>;

function expectedVersion(event: Event): number | undefined {
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

const handler = async (event: Event) => {
  const result = await putProfile(stores(), event.params.name, event.profile as Profile, {
    expectedVersion: expectedVersion(event),
  });
  metrics.addMetric(
    result.created ? 'ProfileVersionsWritten' : 'ProfileWritesUnchanged',
    MetricUnit.Count,
    1,
  );
  return json(result.created ? 201 : 200, result, { etag: etag(result.version.version) });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors({ metrics }))
  .use(parseRequest({ params: NameParams }))
  .use(profileBody());
