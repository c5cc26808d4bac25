import { ArnFormat, Duration, Names, Stack } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct, type IConstruct } from 'constructs';
import { ABANDONED_METRIC } from '../core/operation/abandoned.js';

/** Where the functions' own metrics are (functions/shared/observability.ts). */
export const PERSONA_METRICS = { namespace: 'Persona', dimensionsMap: { service: 'persona' } } as const;

/** The metrics the functions record under PERSONA_METRICS, for the dashboard. */
const FUNCTION_METRICS = {
  operations: [ABANDONED_METRIC],
  writes: [
    'ProfileVersionsWritten',
    'ProfileWritesUnchanged',
    'PersonaVersionsWritten',
    'PersonaWritesUnchanged',
  ],
  problems: ['Problems'],
} as const;

const PERIOD = Duration.minutes(5);

/** API latency, p99 over 5 minutes three periods in a row, that raises the latency alarm. */
export const DEFAULT_API_LATENCY_THRESHOLD = Duration.seconds(5);

/**
 * The workflows and functions built under `scope`, found rather than listed, so that one added
 * later (a new workflow, a new route) is watched without anyone remembering to.
 */
export function workflowsAndFunctions(scope: IConstruct): {
  stateMachines: sfn.StateMachine[];
  functions: lambda.Function[];
} {
  const all = scope.node.findAll();
  return {
    stateMachines: all.filter((c): c is sfn.StateMachine => c instanceof sfn.StateMachine),
    functions: all.filter((c): c is lambda.Function => c instanceof lambda.Function),
  };
}

/**
 * Clone outcomes to a topic Persona did not make, too (PersonaPlatformProps.notificationTopic).
 * The topic's owner allows events.amazonaws.com to publish to it: a policy cannot be added to an
 * imported topic.
 */
export function announceCloneOutcomes(rule: events.Rule, topic: sns.ITopic): void {
  // Bound by ARN, as the own topic is: the SNS target would also try to open the topic's policy.
  rule.addTarget({ bind: () => ({ arn: topic.topicArn }) });
}

export interface PersonaMonitoringProps {
  /** Where every alarm (and its return to OK) is announced. */
  readonly topic: sns.ITopic;
  /** Every workflow: executions failed, timed out and aborted, each an alarm. */
  readonly stateMachines: readonly sfn.IStateMachine[];
  /** The capture workflow and task, for the dashboard's captures. */
  readonly capture: { readonly stateMachine: sfn.IStateMachine; readonly function: lambda.IFunction };
  /** Every function: errors or throttles, an alarm each. */
  readonly functions: readonly lambda.IFunction[];
  /** Every table: read or write throttle events, an alarm each. */
  readonly tables: readonly Pick<dynamodb.ITable, 'node' | 'tableName'>[];
  readonly api: apigw.RestApi;
  /** @default DEFAULT_API_LATENCY_THRESHOLD (5 seconds) */
  readonly apiLatencyThreshold?: Duration;
}

/**
 * CloudWatch alarms on what needs someone's attention, all announced on one topic, and a
 * dashboard of operations, captures, errors and latencies.
 *
 * Alarms are few per resource on purpose: Persona's stack is one CloudFormation stack (500
 * resources at most) of over forty functions, so a function's errors and throttles are one
 * alarm (their sum), as are a table's read and write throttles; the dashboard shows each
 * apart.
 */
export class PersonaMonitoring extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;
  private readonly action: actions.SnsAction;

  constructor(scope: Construct, id: string, props: PersonaMonitoringProps) {
    super(scope, id);
    this.action = new actions.SnsAction(props.topic);
    allowAlarmsToPublish(this, props.topic);

    for (const machine of props.stateMachines) {
      const name = Names.nodeUniqueId(machine.node);
      const path = machine.node.path;
      const statuses = [
        ['Failed', 'failed', machine.metricFailed({ period: PERIOD, statistic: 'Sum' })],
        ['TimedOut', 'timed out', machine.metricTimedOut({ period: PERIOD, statistic: 'Sum' })],
        ['Aborted', 'were aborted', machine.metricAborted({ period: PERIOD, statistic: 'Sum' })],
      ] as const;
      for (const [suffix, what, metric] of statuses) {
        this.alarm(`${name}Executions${suffix}`, metric, {
          threshold: 1,
          description: `Persona workflow ${path}: executions ${what} in the last 5 minutes. Each one's operation is FAILED with the reason (GET /operations?status=FAILED).`,
        });
      }
    }

    for (const fn of props.functions) {
      const errors = fn.metricErrors({ period: PERIOD, statistic: 'Sum' });
      const throttles = fn.metricThrottles({ period: PERIOD, statistic: 'Sum' });
      this.alarm(
        `${Names.nodeUniqueId(fn.node)}ErrorsOrThrottles`,
        new cloudwatch.MathExpression({
          expression: 'errors + throttles',
          usingMetrics: { errors, throttles },
          period: PERIOD,
          label: 'errors + throttles',
        }),
        {
          threshold: 1,
          description: `Persona function ${fn.node.path}: invocations that failed or were throttled in the last 5 minutes (its log group says which and why).`,
        },
      );
    }

    for (const table of props.tables) {
      const metric = (metricName: string) =>
        new cloudwatch.Metric({
          namespace: 'AWS/DynamoDB',
          metricName,
          dimensionsMap: { TableName: table.tableName },
          period: PERIOD,
          statistic: 'Sum',
        });
      this.alarm(
        `${Names.nodeUniqueId(table.node)}Throttles`,
        new cloudwatch.MathExpression({
          expression: 'reads + writes',
          usingMetrics: { reads: metric('ReadThrottleEvents'), writes: metric('WriteThrottleEvents') },
          period: PERIOD,
          label: 'read + write throttle events',
        }),
        {
          threshold: 1,
          description: `Persona table ${table.node.path}: requests throttled in the last 5 minutes (on-demand tables throttle above twice their previous peak; provisioned ones above their capacity).`,
        },
      );
    }

    this.alarm('Api5xx', props.api.metricServerError({ period: PERIOD, statistic: 'Sum' }), {
      threshold: 1,
      description:
        'Persona API: requests answered 5xx in the last 5 minutes (a function failed or timed out, or API Gateway could not reach it).',
    });
    const latency = props.apiLatencyThreshold ?? DEFAULT_API_LATENCY_THRESHOLD;
    this.alarm('ApiLatencyP99', props.api.metricLatency({ period: PERIOD, statistic: 'p99' }), {
      threshold: latency.toMilliseconds(),
      evaluationPeriods: 3,
      description: `Persona API: the slowest 1% of requests took ${latency.toHumanString()} or more for 15 minutes.`,
    });

    this.dashboard = this.buildDashboard(props);
  }

  private alarm(
    id: string,
    metric: cloudwatch.IMetric,
    options: { threshold: number; description: string; evaluationPeriods?: number },
  ): void {
    const alarm = new cloudwatch.Alarm(this, id, {
      metric,
      threshold: options.threshold,
      evaluationPeriods: options.evaluationPeriods ?? 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // No data is no failure: most functions are idle most of the time.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: options.description,
    });
    alarm.addAlarmAction(this.action);
    alarm.addOkAction(this.action);
    this.alarms.push(alarm);
  }

  private buildDashboard(props: PersonaMonitoringProps): cloudwatch.Dashboard {
    const persona = (metricName: string, statistic = 'Sum') =>
      new cloudwatch.Metric({ ...PERSONA_METRICS, metricName, period: PERIOD, statistic });
    const perMachine = (f: (m: sfn.IStateMachine) => cloudwatch.Metric, what: string) =>
      props.stateMachines.map((m) => f(m).with({ label: `${m.node.id} ${what}` }));
    const sum = { period: PERIOD, statistic: 'Sum' };
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.hours(12),
    });
    dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown:
          '# Persona\nOperations are workflow executions (each named after its operation id). An operation whose workflow stopped without ending it is failed by Persona (abandoned).',
        width: 24,
        height: 2,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Operations started and succeeded',
        left: [
          ...perMachine((m) => m.metricStarted(sum), 'started'),
          ...perMachine((m) => m.metricSucceeded(sum), 'succeeded'),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Operations failed, timed out, aborted, abandoned',
        left: [
          ...perMachine((m) => m.metricFailed(sum), 'failed'),
          ...perMachine((m) => m.metricTimedOut(sum), 'timed out'),
          ...perMachine((m) => m.metricAborted(sum), 'aborted'),
          ...FUNCTION_METRICS.operations.map((n) =>
            persona(n).with({ label: 'abandoned, failed by Persona' }),
          ),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Operation duration (p50, p99)',
        left: [
          ...perMachine((m) => m.metricTime({ period: PERIOD, statistic: 'p50' }), 'p50'),
          ...perMachine((m) => m.metricTime({ period: PERIOD, statistic: 'p99' }), 'p99'),
        ],
        width: 8,
      }),
    );
    const capture = props.capture;
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Captures',
        left: [
          capture.stateMachine.metricStarted(sum).with({ label: 'started' }),
          capture.stateMachine.metricSucceeded(sum).with({ label: 'succeeded' }),
          capture.stateMachine.metricFailed(sum).with({ label: 'failed' }),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Capture duration (task p50, p99)',
        left: [
          capture.function.metricDuration({ period: PERIOD, statistic: 'p50' }).with({ label: 'p50' }),
          capture.function.metricDuration({ period: PERIOD, statistic: 'p99' }).with({ label: 'p99' }),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Profile and persona writes',
        left: FUNCTION_METRICS.writes.map((n) => persona(n)),
        width: 8,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'API requests and errors',
        left: [
          props.api.metricCount(sum).with({ label: 'requests' }),
          props.api.metricClientError(sum).with({ label: '4xx' }),
          props.api.metricServerError(sum).with({ label: '5xx' }),
          ...FUNCTION_METRICS.problems.map((n) => persona(n).with({ label: 'problem responses' })),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function errors',
        left: props.functions.map((fn) => fn.metricErrors(sum).with({ label: fn.node.id })),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function and table throttles',
        left: [
          ...props.functions.map((fn) => fn.metricThrottles(sum).with({ label: fn.node.id })),
          ...props.tables.flatMap((t) =>
            ['ReadThrottleEvents', 'WriteThrottleEvents'].map(
              (metricName) =>
                new cloudwatch.Metric({
                  namespace: 'AWS/DynamoDB',
                  metricName,
                  dimensionsMap: { TableName: t.tableName },
                  ...sum,
                  label: `${t.node.id} ${metricName}`,
                }),
            ),
          ),
        ],
        width: 8,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'API latency (p50, p99) and integration latency (p99)',
        left: [
          props.api.metricLatency({ period: PERIOD, statistic: 'p50' }).with({ label: 'p50' }),
          props.api.metricLatency({ period: PERIOD, statistic: 'p99' }).with({ label: 'p99' }),
          props.api
            .metricIntegrationLatency({ period: PERIOD, statistic: 'p99' })
            .with({ label: 'integration p99' }),
        ],
        leftAnnotations: [
          {
            value: (props.apiLatencyThreshold ?? DEFAULT_API_LATENCY_THRESHOLD).toMilliseconds(),
            label: 'latency alarm',
          },
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function duration (p99)',
        left: props.functions.map((fn) =>
          fn.metricDuration({ period: PERIOD, statistic: 'p99' }).with({ label: fn.node.id }),
        ),
        width: 12,
      }),
    );
    return dashboard;
  }
}

/**
 * CloudWatch publishes an alarm's notification as cloudwatch.amazonaws.com: a topic with a
 * policy of its own (ours enforce TLS) must allow it, and an encrypted topic's key must let it
 * encrypt. Both only for this account's alarms. A topic imported from elsewhere is the owner's
 * to open; nothing is added to it.
 */
function allowAlarmsToPublish(scope: Construct, topic: sns.ITopic): void {
  if (!(topic instanceof sns.Topic)) return;
  const stack = Stack.of(scope);
  const alarms = stack.formatArn({
    service: 'cloudwatch',
    resource: 'alarm',
    resourceName: '*',
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
  const principal = new iam.ServicePrincipal('cloudwatch.amazonaws.com');
  const conditions = {
    ArnLike: { 'aws:SourceArn': alarms },
    StringEquals: { 'aws:SourceAccount': stack.account },
  };
  topic.addToResourcePolicy(
    new iam.PolicyStatement({
      principals: [principal],
      actions: ['sns:Publish'],
      resources: [topic.topicArn],
      conditions,
    }),
  );
  // SNS encrypts each message under the topic's ARN as encryption context, as for the clone
  // outcomes' statement of the key (infra/workflows.ts): this account's topics in this region.
  if (topic.masterKey instanceof kms.Key) {
    topic.masterKey.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [principal],
        actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
        resources: ['*'],
        conditions: {
          StringLike: {
            'kms:EncryptionContext:aws:sns:topicArn': stack.formatArn({
              service: 'sns',
              resource: '*',
              arnFormat: ArnFormat.NO_RESOURCE_NAME,
            }),
          },
        },
      }),
    );
  }
}
