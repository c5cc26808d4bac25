// What every function reports about itself: its logs, its metrics (namespace Persona) and its
// trace, and the one middleware chain that sets them up for each invocation. Apart from the
// stores in runtime.ts, so that a function that opens none (the OpenAPI document, the
// authoriser) is observed without bundling them.
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { MiddlewareObj } from '@middy/core';

export const logger = new Logger({ serviceName: 'persona' });
// Published as embedded metric format through the function's logs: no PutMetricData calls,
// no extra permissions. Off in the embedded runtime (POWERTOOLS_DEV).
export const metrics = new Metrics({ namespace: 'Persona', serviceName: 'persona' });
// X-Ray through Powertools. It turns itself off outside Lambda (no AWS_EXECUTION_ENV: the
// embedded runtime, the CLI, tests) and when POWERTOOLS_TRACE_ENABLED=false.
export const tracer = new Tracer({ serviceName: 'persona' });

/**
 * An AWS SDK client whose calls are traced as subsegments of the invocation (a no-op when
 * tracing is off). Every client a function builds goes through here.
 */
export function traced<T>(client: T): T {
  return tracer.captureAWSv3Client(client);
}

/**
 * Publishes what the invocation recorded with `metrics`. Unlike Powertools' logMetrics it says
 * nothing when there is nothing to publish, which is most invocations of most functions. No
 * ColdStart metric: a custom metric per function costs more than it tells, and the trace
 * annotates every cold start.
 */
function publishMetrics(): MiddlewareObj {
  const publish = () => {
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  };
  return { after: publish, onError: publish };
}

/**
 * What every handler uses first, in this order: the trace of the invocation (with its ColdStart
 * and Service annotations and, through `traced`, its SDK calls), the logger's Lambda context,
 * and the metrics the handler records. `middy(handler).use(observability())`.
 */
export function observability(): MiddlewareObj[] {
  return [captureLambdaHandler(tracer), injectLambdaContext(logger), publishMetrics()];
}
