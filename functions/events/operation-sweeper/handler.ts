// Every 15 minutes (an EventBridge schedule): operations still PENDING or RUNNING half an hour
// after they were created, whose execution is not running (it stopped where nothing recorded
// it, or never started), end FAILED with the reason. The status change rule ends most of them
// within seconds; this finds what it missed (an event not delivered, a start that failed).
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { SFNClient } from '@aws-sdk/client-sfn';
import middy from '@middy/core';
import {
  ABANDONED_ENV,
  ABANDONED_METRIC,
  DynamoOpenOperations,
  StepFunctionsExecutions,
  type SweepOptions,
  sweepAbandonedOperations,
} from '../../../core/operation/abandoned.js';
import { OPERATIONS_TABLE } from '../../../core/storage/definitions.js';
import {
  ddb,
  getRequiredEnv,
  logger,
  metrics,
  observability,
  operations,
  traced,
} from '../../shared/runtime.js';

/**
 * Half an hour leaves a start retried by its client time to go through; a week bounds what
 * each sweep reads, and an operation stays in that window for hundreds of sweeps.
 */
export const SWEEP: SweepOptions = { staleAfterMs: 30 * 60_000, lookBackMs: 7 * 24 * 3_600_000 };

let executions: StepFunctionsExecutions | undefined;

export async function handler(_event: unknown) {
  executions ??= new StepFunctionsExecutions(
    traced(new SFNClient({})),
    getRequiredEnv(ABANDONED_ENV.stateMachines).split(','),
  );
  const report = await sweepAbandonedOperations(
    {
      operations: operations(),
      open: new DynamoOpenOperations(ddb(), getRequiredEnv(OPERATIONS_TABLE.env)),
      executions,
    },
    SWEEP,
  );
  if (report.failed.length > 0) {
    metrics.addMetric(ABANDONED_METRIC, MetricUnit.Count, report.failed.length);
    logger.warn('abandoned operations failed', { failed: report.failed });
  }
  const summary = {
    examined: report.examined,
    failed: report.failed,
    running: report.running,
    errors: report.errors.map((e) => ({ operationId: e.operationId, error: String(e.error) })),
  };
  // The others were swept; failing the invocation makes the errors an alarm.
  if (report.errors.length > 0) {
    logger.error('operations not swept', { errors: summary.errors });
    throw new Error(
      `${report.errors.length} operation(s) could not be swept: ${summary.errors.map((e) => `${e.operationId}: ${e.error}`).join('; ')}`,
    );
  }
  return summary;
}

export const main = middy(handler).use(observability());
