import middy from '@middy/core';
import * as z from 'zod';
import { recordWorkflowFailure } from '../../../core/operation/tasks.js';
import { observability, operations } from '../../shared/runtime.js';

const Input = z.object({
  operationId: z.string().min(1),
  error: z.object({ Error: z.string().optional(), Cause: z.string().optional() }).default({}),
});

// The workflow's catch-all: an operation that died without recording why (a time-out, a crash)
// still ends FAILED, with what Step Functions knows, and the step it died in is marked failed.
const handler = async (event: unknown) => {
  const { operationId, error } = Input.parse(event);
  const op = await recordWorkflowFailure({ operations: operations() }, operationId, error);
  return { operationId, status: op.status };
};

export const main = middy(handler).use(observability());
