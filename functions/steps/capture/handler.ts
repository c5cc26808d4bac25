import middy from '@middy/core';
import * as z from 'zod';
import { runCapture } from '../../../core/capture/operation.js';
import { unlessFinished } from '../../../core/operation/tasks.js';
import { captureDeps } from '../../shared/capture.js';
import { observability, operations } from '../../shared/runtime.js';

const Input = z.object({ operationId: z.string().min(1) });

// A Step Functions task: the operation id in, a summary out; the operation record has the rest.
// Delivered again for a capture that has ended, it succeeds without running anything.
const handler = async (event: unknown) => {
  const { operationId } = Input.parse(event);
  return unlessFinished(operations(), operationId, async () => ({
    operationId,
    summary: await runCapture(captureDeps(), operationId),
  }));
};

export const main = middy(handler).use(observability());
