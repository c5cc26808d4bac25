import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { z } from 'zod';
import { recordCaptureFailure } from '../../../core/capture/operation.js';
import { logger, operations } from '../../shared/runtime.js';

const Input = z.object({
  operationId: z.string().min(1),
  error: z.object({ Error: z.string().optional(), Cause: z.string().optional() }).default({}),
});

// The workflow's catch-all: a capture that died without recording why (a time-out, a crash)
// still ends FAILED, with what Step Functions knows.
const handler = async (event: unknown) => {
  const { operationId, error } = Input.parse(event);
  await recordCaptureFailure({ operations: operations() }, operationId, error);
};

export const main = middy(handler).use(injectLambdaContext(logger));
