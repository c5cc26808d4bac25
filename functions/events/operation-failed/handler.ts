// EventBridge's "Step Functions Execution Status Change" for Persona's state machines, when an
// execution FAILED, TIMED_OUT or was ABORTED: the operation it ran (the execution is named
// after it) ends FAILED with the reason, unless the workflow ended it already.
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import * as z from 'zod';
import {
  ABANDONED_METRIC,
  type AbandonedOutcome,
  failAbandonedOperation,
  STOPPED_STATUSES,
} from '../../../core/operation/abandoned.js';
import { logger, metrics, observability, operations } from '../../shared/runtime.js';

/** The fields of the event's detail this reads; Step Functions sends more (input, output, dates). */
const StatusChange = z.object({
  detail: z.object({
    executionArn: z.string().min(1),
    name: z.string().min(1),
    status: z.enum(STOPPED_STATUSES),
    error: z.string().nullish(),
    cause: z.string().nullish(),
  }),
});

export async function handler(event: unknown): Promise<AbandonedOutcome> {
  const { detail } = StatusChange.parse(event);
  const outcome = await failAbandonedOperation({ operations: operations() }, detail);
  if (outcome.outcome === 'failed') {
    metrics.addMetric(ABANDONED_METRIC, MetricUnit.Count, 1);
    logger.warn('operation failed: its workflow stopped outside its own error handling', {
      operationId: outcome.operationId,
      executionArn: detail.executionArn,
      error: outcome.operation.error,
    });
  } else if (outcome.outcome === 'unknown') {
    logger.info('a stopped execution runs no operation', { executionArn: detail.executionArn });
  }
  return outcome;
}

export const main = middy(handler).use(observability());
