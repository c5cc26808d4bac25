import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import { etag } from '../../../core/api/schemas.js';
import type { Profile } from '../../../core/profile/schema.js';
import { createProfile } from '../../../core/profile/service.js';
import { type ApiEvent, apiErrors, json, profileBody } from '../../shared/http.js';
import { metrics, observability, stores } from '../../shared/runtime.js';

const handler = async (event: ApiEvent) => {
  const result = await createProfile(stores(), event.profile as Profile);
  const { name, version } = result.version;
  metrics.addMetric(
    result.created ? 'ProfileVersionsWritten' : 'ProfileWritesUnchanged',
    MetricUnit.Count,
    1,
  );
  return json(result.created ? 201 : 200, result, { etag: etag(version), location: `/profiles/${name}` });
};

export const main = middy(handler).use(observability()).use(apiErrors({ metrics })).use(profileBody());
