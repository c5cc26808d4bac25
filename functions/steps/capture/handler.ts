import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { z } from 'zod';
import { runCapture } from '../../../core/capture/operation.js';
import { captureDeps } from '../../shared/capture.js';
import { logger } from '../../shared/runtime.js';

const Input = z.object({ operationId: z.string().min(1) });

// A Step Functions task: the operation id in, a summary out; the operation record has the rest.
const handler = async (event: unknown) => {
  const { operationId } = Input.parse(event);
  return { operationId, summary: await runCapture(captureDeps(), operationId) };
};

export const main = middy(handler).use(injectLambdaContext(logger));
