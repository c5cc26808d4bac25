// The alarms, the topic they notify, the dashboard, the abandoned-operations rule and sweeper,
// and the tags, on the template `cdk synth` makes (configuration only: no bundling).
import { readFileSync } from 'node:fs';
import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ABANDONED_ENV } from '../../core/operation/abandoned.js';
import { OPERATIONS_TABLE, TABLES } from '../../core/storage/definitions.js';
import { PersonaPlatform } from '../../infra/platform.js';
import { PersonaStack, type PersonaStackProps } from '../../infra/stack.js';
import { APPLICATION_TAGS, applicationIdentity, tagApplication } from '../../infra/tags.js';

const CDK_CONTEXT: Record<string, unknown> = JSON.parse(
  readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8'),
).context;
const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  name: string;
  version: string;
};

interface Synthesized {
  readonly app: App;
  readonly stack: PersonaStack;
  readonly template: Template;
  /** The monitoring's nested stack; an empty template when monitoring is off. */
  readonly monitoring: Template;
  /** What a value of the nested stack refers to in the stack: its parameters resolved. */
  readonly ref: (value: unknown) => string | undefined;
  /** The nested stack's parameter that carries a resource of the stack. */
  readonly param: (logicalId: string) => { Ref: string };
}

const newApp = () => new App({ context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] } });

/** The parameters the stack hands its nested stacks: parameter name → what it is given. */
function nestedParameters(parent: Template): Record<string, any> {
  const params: Record<string, any> = {};
  for (const r of Object.values(parent.findResources('AWS::CloudFormation::Stack')))
    Object.assign(params, r.Properties.Parameters ?? {});
  return params;
}

function synthesize(props: PersonaStackProps = {}, app = newApp()): Synthesized {
  const stack = new PersonaStack(app, 'PersonaStack', props);
  return withMonitoring({ app, stack, template: Template.fromStack(stack) }, stack.platform);
}

function withMonitoring<T extends { template: Template }>(
  s: T,
  platform: PersonaPlatform,
): T & Pick<Synthesized, 'monitoring' | 'ref' | 'param'> {
  const params = nestedParameters(s.template);
  const nested = platform.monitoring ? Stack.of(platform.monitoring) : undefined;
  return {
    ...s,
    monitoring: nested ? Template.fromStack(nested) : Template.fromJSON({ Resources: {} }),
    ref: (value) => {
      const r = (value as { Ref?: string } | undefined)?.Ref;
      return r === undefined ? undefined : (params[r]?.Ref ?? r);
    },
    param: (logicalId) => {
      const found = Object.entries(params).find(([, v]) => v?.Ref === logicalId);
      if (!found) throw new Error(`no parameter of the nested stack carries ${logicalId}`);
      return { Ref: found[0] };
    },
  };
}

const idOf = (c: IConstruct) => Stack.of(c).getLogicalId(c.node.defaultChild as CfnElement);

type Resource = { Properties: Record<string, any> };
const alarms = (t: Template) => Object.values(t.findResources('AWS::CloudWatch::Alarm')) as Resource[];

/** The alarms on a single metric of that name. */
const alarmsOn = (t: Template, metricName: string) =>
  alarms(t).filter((a) => a.Properties.MetricName === metricName);

/** The metrics (name and dimensions) of a metric math alarm. */
const mathMetrics = (a: Resource) =>
  (a.Properties.Metrics ?? [])
    .filter((m: any) => m.MetricStat)
    .map((m: any) => ({ name: m.MetricStat.Metric.MetricName, dimensions: m.MetricStat.Metric.Dimensions }));

const SUM_5_MIN = { Statistic: 'Sum', Period: 300 };
const AT_LEAST = 'GreaterThanOrEqualToThreshold';

describe('PersonaPlatform monitoring, by default', () => {
  let s: Synthesized;
  let topic: { Ref: string };

  beforeAll(() => {
    s = synthesize();
    // Alarms are in the monitoring's nested stack, which gets the topic as a parameter.
    topic = s.param(idOf(s.stack.platform.workflows.notificationTopic));
  }, 300_000);

  it('reuses the clone outcomes’ topic for alarms, and says so in the stack output', () => {
    expect(s.stack.platform.notificationTopic).toBe(s.stack.platform.workflows.notificationTopic);
    s.template.resourceCountIs('AWS::SNS::Topic', 1);
    s.monitoring.resourceCountIs('AWS::SNS::Topic', 0);
    s.template.hasOutput('NotificationTopicArn', {
      Value: { Ref: idOf(s.stack.platform.workflows.notificationTopic) },
    });
    // The dashboard's name, from the nested stack's output.
    const nested = Object.keys(s.template.findResources('AWS::CloudFormation::Stack'));
    expect(nested).toHaveLength(1);
    s.template.hasOutput('DashboardName', {
      Value: { 'Fn::GetAtt': [nested[0], Match.stringLikeRegexp('^Outputs\\.')] },
    });
  });

  it('alarms on every workflow’s executions failed, timed out and aborted, at the first one, notifying the topic', () => {
    const stateMachines = Object.keys(s.template.findResources('AWS::StepFunctions::StateMachine'));
    expect(stateMachines.length).toBeGreaterThanOrEqual(3);
    for (const metric of ['ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionsAborted']) {
      const found = alarmsOn(s.monitoring, metric);
      expect(found.map((a) => s.ref(a.Properties.Dimensions[0].Value)).sort(), metric).toEqual(
        [...stateMachines].sort(),
      );
      for (const a of found) {
        expect(a.Properties).toMatchObject({
          Namespace: 'AWS/States',
          ...SUM_5_MIN,
          Threshold: 1,
          EvaluationPeriods: 1,
          ComparisonOperator: AT_LEAST,
          TreatMissingData: 'notBreaching',
          AlarmActions: [topic],
          OKActions: [topic],
        });
        expect(a.Properties.Dimensions[0].Name).toBe('StateMachineArn');
      }
    }
  });

  it('alarms on each function’s errors and throttles, every function of the platform included', () => {
    const functions = Object.keys(s.template.findResources('AWS::Lambda::Function'));
    const perFunction = alarms(s.monitoring).filter(
      (a) => a.Properties.Metrics?.[0]?.Expression === 'errors + throttles',
    );
    const watched = perFunction.map((a) => {
      const metrics = mathMetrics(a);
      expect(metrics.map((m: any) => m.name).sort()).toEqual(['Errors', 'Throttles']);
      const refs = new Set(metrics.map((m: any) => s.ref(m.dimensions[0].Value)));
      expect(refs.size).toBe(1);
      expect(a.Properties).toMatchObject({
        Threshold: 1,
        ComparisonOperator: AT_LEAST,
        AlarmActions: [topic],
      });
      return [...refs][0];
    });
    expect(watched.sort()).toEqual([...functions].sort());
    // The abandoned operations' own functions are watched too.
    expect(watched).toContain(idOf(s.stack.platform.abandonedOperations.sweeperFunction));
  });

  it('alarms on each table’s read and write throttle events', () => {
    const perTable = alarms(s.monitoring).filter(
      (a) => a.Properties.Metrics?.[0]?.Expression === 'reads + writes',
    );
    expect(perTable).toHaveLength(TABLES.length);
    const tables = perTable.map((a) => {
      const metrics = mathMetrics(a);
      expect(metrics.map((m: any) => m.name).sort()).toEqual(['ReadThrottleEvents', 'WriteThrottleEvents']);
      expect(a.Properties).toMatchObject({
        Threshold: 1,
        ComparisonOperator: AT_LEAST,
        AlarmActions: [topic],
      });
      return s.ref(metrics[0].dimensions[0].Value);
    });
    expect(tables.sort()).toEqual(Object.values(s.stack.platform.storage.tables).map(idOf).sort());
  });

  it('alarms on the API’s 5xx at the first one, and on its p99 latency of 5 s for 15 minutes', () => {
    const [fivexx, ...more] = alarmsOn(s.monitoring, '5XXError');
    expect(more).toEqual([]);
    expect(fivexx?.Properties).toMatchObject({
      Namespace: 'AWS/ApiGateway',
      ...SUM_5_MIN,
      Threshold: 1,
      ComparisonOperator: AT_LEAST,
      AlarmActions: [topic],
    });
    const [latency] = alarmsOn(s.monitoring, 'Latency');
    expect(latency?.Properties).toMatchObject({
      Namespace: 'AWS/ApiGateway',
      ExtendedStatistic: 'p99',
      Period: 300,
      Threshold: 5000,
      EvaluationPeriods: 3,
      AlarmActions: [topic],
    });
  });

  it('lets only this account’s alarms publish to the topic and use its key', () => {
    s.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [{ Ref: idOf(s.stack.platform.workflows.notificationTopic) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Condition: Match.objectLike({ ArnLike: { 'aws:SourceArn': Match.anyValue() } }),
          }),
        ]),
      },
    });
    s.template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
            Condition: { StringLike: { 'kms:EncryptionContext:aws:sns:topicArn': Match.anyValue() } },
          }),
        ]),
      },
    });
  });

  it('draws a dashboard of operations, captures, errors and latencies from the functions’ own metrics too', () => {
    const [dashboard] = Object.values(s.monitoring.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard?.Properties.DashboardBody);
    for (const title of [
      'Operations started and succeeded',
      'Operations failed, timed out, aborted, abandoned',
      'Captures',
      'API requests and errors',
      'Function errors',
      'API latency (p50, p99) and integration latency (p99)',
    ])
      expect(body).toContain(title);
    for (const metric of [
      'ExecutionsStarted',
      'OperationsAbandoned',
      'ProfileVersionsWritten',
      'Problems',
      'Latency',
    ])
      expect(body).toContain(metric);
    expect(body).toContain('\\"Persona\\",\\"OperationsAbandoned\\",\\"service\\",\\"persona\\"');
  });

  it('stays within CloudFormation’s 500 resources per stack, alarms and dashboard included', () => {
    // CloudFormation refuses a template of more: the alarms are one per function and per table
    // for this reason. If the stack grows near it, the monitoring moves to a nested stack.
    const count = Object.keys(s.template.toJSON().Resources).length;
    expect(count, `${count} resources`).toBeLessThan(500);
    const nested = Object.keys(s.monitoring.toJSON().Resources).length;
    expect(nested, `${nested} resources in the monitoring's nested stack`).toBeLessThan(500);
    // A nested stack takes at most 200 parameters: one per function, table and workflow watched.
    const params = Object.keys(s.monitoring.toJSON().Parameters ?? {}).length;
    expect(params, `${params} parameters`).toBeLessThan(200);
  });

  it('hands the workflows’ failed, timed-out and aborted executions to the function that fails their operation', () => {
    const { abandonedOperations: abandoned, workflows } = s.stack.platform;
    const machines = [workflows.capture, workflows.clone, workflows.personaSwitch].map((m) => ({
      Ref: idOf(m),
    }));
    s.template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: Match.arrayWith(machines) },
      },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [idOf(abandoned.failFunction), 'Arn'] },
          RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 7200 },
        }),
      ],
    });
  });

  it('sweeps every 15 minutes with the ARNs of every workflow, and may describe their executions only', () => {
    const { abandonedOperations: abandoned } = s.stack.platform;
    const sweeper = idOf(abandoned.sweeperFunction);
    s.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(15 minutes)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [sweeper, 'Arn'] } })],
    });
    const fn = s.template.findResources('AWS::Lambda::Function')[sweeper];
    const variables = fn?.Properties.Environment.Variables;
    const machines = Object.keys(s.template.findResources('AWS::StepFunctions::StateMachine'));
    expect(JSON.stringify(variables[ABANDONED_ENV.stateMachines])).toMatch(/Fn::Join/);
    for (const m of machines) expect(JSON.stringify(variables[ABANDONED_ENV.stateMachines])).toContain(m);
    expect(variables[OPERATIONS_TABLE.env]).toEqual({
      Ref: idOf(s.stack.platform.storage.tables.Operations as IConstruct),
    });
    for (const table of TABLES.filter((t) => t.id !== OPERATIONS_TABLE.id))
      expect(variables).not.toHaveProperty(table.env);
    const policies = Object.values(s.template.findResources('AWS::IAM::Policy')).filter((p) =>
      JSON.stringify(p.Properties.Roles).includes(idOf(abandoned.sweeperFunction.role as IConstruct)),
    );
    const describe = policies
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((st: any) => [st.Action].flat().some((a: string) => a.startsWith('states:')));
    expect(describe).toHaveLength(1);
    expect(describe[0].Action).toBe('states:DescribeExecution');
    expect(describe[0].Resource).toHaveLength(machines.length);
    expect(JSON.stringify(describe[0].Resource)).toContain(':execution:');
  });

  it('passes cdk-nag AwsSolutions with the monitoring and the sweeper in', () => {
    const violations = new AwsSolutionsChecks(s.app).validateScope(s.app).violations;
    expect(
      violations.map(
        (v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
      ),
    ).toEqual([]);
  });

  it('tags functions, tables, buckets, state machines, the topic, log groups and alarms with Persona’s name and version', () => {
    const expected = [
      { Key: APPLICATION_TAGS.name, Value: PACKAGE.name },
      { Key: APPLICATION_TAGS.version, Value: PACKAGE.version },
    ];
    for (const type of [
      'AWS::Lambda::Function',
      'AWS::DynamoDB::Table',
      'AWS::S3::Bucket',
      'AWS::SNS::Topic',
      'AWS::Logs::LogGroup',
      'AWS::KMS::Key',
      'AWS::IAM::Role',
      'AWS::CloudWatch::Alarm',
      'AWS::CloudFormation::Stack',
    ]) {
      // Alarms are in the monitoring's nested stack; the nested stack itself in the stack.
      const resources = Object.entries(
        (type === 'AWS::CloudWatch::Alarm' ? s.monitoring : s.template).findResources(type),
      );
      expect(resources.length, type).toBeGreaterThan(0);
      for (const [id, r] of resources)
        expect(r.Properties.Tags, `${type} ${id}`).toEqual(expect.arrayContaining(expected));
    }
    // State machines take tags as a list of Key/Value too; the API's stage as well.
    for (const type of ['AWS::StepFunctions::StateMachine', 'AWS::ApiGateway::Stage'])
      for (const r of Object.values(s.template.findResources(type)))
        expect(r.Properties.Tags, type).toEqual(expect.arrayContaining(expected));
  });
});

describe('PersonaPlatform with monitoring off', () => {
  it('makes no alarm and no dashboard, and still fails abandoned operations', () => {
    const { template, stack } = synthesize({ platform: { monitoring: false } });
    expect(stack.platform.monitoring).toBeUndefined();
    template.resourceCountIs('AWS::CloudWatch::Alarm', 0);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 0);
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)' });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ source: ['aws.states'] }),
    });
    // Nothing of the alarms is left behind on the topic's policy.
    expect(JSON.stringify(template.findResources('AWS::SNS::TopicPolicy'))).not.toContain(
      'cloudwatch.amazonaws.com',
    );
  }, 300_000);
});

describe('PersonaPlatform with an existing topic and tags of its own', () => {
  const ARN = 'arn:aws:sns:eu-west-1:123456789012:operations-team';
  let s: { app: App; platform: PersonaPlatform; template: Template } & Pick<Synthesized, 'monitoring'>;

  beforeAll(() => {
    const app = newApp();
    const stack = new Stack(app, 'Embedding');
    const platform = new PersonaPlatform(stack, 'Platform', {
      notificationTopic: sns.Topic.fromTopicArn(stack, 'Ops', ARN),
      tags: { team: 'infra', 'cost-centre': 'ops-42' },
    });
    s = withMonitoring({ app, platform, template: Template.fromStack(stack) }, platform);
  }, 300_000);

  it('notifies that topic of every alarm, and of clone outcomes too', () => {
    const all = alarms(s.monitoring);
    expect(all.length).toBeGreaterThan(50);
    for (const a of all) {
      expect(a.Properties.AlarmActions).toEqual([ARN]);
      expect(a.Properties.OKActions).toEqual([ARN]);
    }
    s.template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ source: ['persona'] }),
      Targets: Match.arrayWith([Match.objectLike({ Arn: ARN })]),
    });
    expect(s.platform.notificationTopic.topicArn).toBe(ARN);
    // Its own topic's policy is not opened to alarms that do not notify it.
    expect(JSON.stringify(s.template.findResources('AWS::SNS::TopicPolicy'))).not.toContain(
      'cloudwatch.amazonaws.com',
    );
  });

  it('adds its tags to every resource beside Persona’s own', () => {
    for (const type of ['AWS::Lambda::Function', 'AWS::DynamoDB::Table', 'AWS::CloudWatch::Alarm']) {
      const resources = Object.values(
        (type === 'AWS::CloudWatch::Alarm' ? s.monitoring : s.template).findResources(type),
      );
      expect(resources.length, type).toBeGreaterThan(0);
      for (const r of resources)
        expect(r.Properties.Tags, type).toEqual(
          expect.arrayContaining([
            { Key: 'team', Value: 'infra' },
            { Key: 'cost-centre', Value: 'ops-42' },
            { Key: APPLICATION_TAGS.version, Value: PACKAGE.version },
          ]),
        );
    }
  });
});

describe('tagApplication', () => {
  it('refuses a tag that would replace Persona’s own or that AWS would refuse, naming it', () => {
    const scope = () => new Stack(new App(), 'Tagged');
    expect(() => tagApplication(scope(), { [APPLICATION_TAGS.version]: '9' })).toThrow(
      `tags.${APPLICATION_TAGS.version}: Persona sets this tag itself`,
    );
    expect(() => tagApplication(scope(), { 'aws:owner': 'x' })).toThrow('tags.aws:owner');
    expect(() => tagApplication(scope(), { team: 'a;b' })).toThrow('tags.team: its value');
    expect(() => tagApplication(scope(), { team: 'infra' })).not.toThrow();
  });

  it('reads the name and version from Persona’s package.json', () => {
    expect(applicationIdentity()).toEqual({ name: PACKAGE.name, version: PACKAGE.version });
  });
});
