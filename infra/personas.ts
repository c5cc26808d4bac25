import * as path from 'node:path';
import { ArnFormat, Duration, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { Construct } from 'constructs';
import { ALARM_PREFIX, SCHEDULE_ENV } from '../core/persona/triggers.js';
import { PROJECT_ROOT } from './api.js';
import { type FunctionSizings, type PersonaFunctionProps, personaFunction } from './function.js';
import { targetFiles } from './morph.js';
import { PERSONA_EVALUATION_GRANTS, PERSONA_SAMPLING_GRANTS } from './permissions.js';
import type { PersonaStorage } from './storage.js';

export interface PersonaTriggersProps {
  readonly storage: PersonaStorage;
  readonly logRetention: logs.RetentionDays;
  readonly logRemovalPolicy: RemovalPolicy;
  readonly projectRoot?: string;
  /** Where the sampling function runs to reach hosts over SSH (the workflows' VPC). @default none */
  readonly hostsVpc?: NonNullable<PersonaFunctionProps['vpc']>;
  readonly sizing?: Pick<FunctionSizings, 'personaEvaluate' | 'personaSample'>;
}

/**
 * What wakes persona evaluation besides the API: the evaluate function, the Scheduler schedule
 * group that persona writes fill with window-edge schedules (core/persona/triggers.ts), the
 * role Scheduler invokes the function with, and the default bus's rule that hands it the state
 * changes of alarms named `Persona/…`.
 */
export class PersonaTriggers extends Construct {
  readonly evaluateFunction: nodejs.NodejsFunction;
  readonly scheduleGroup: scheduler.ScheduleGroup;
  /** Assumed by Scheduler; may invoke the evaluate function and nothing else. */
  readonly schedulerRole: iam.Role;
  /** Alarm State Change events of alarms named with ALARM_PREFIX, to the evaluate function. */
  readonly alarmRule: events.Rule;
  /**
   * Reads the hosts that no agent reports for (over their transport, or CloudWatch for EC2)
   * and evaluates them; the platform gives it the tasks' way to hosts.
   */
  readonly sampleFunction: nodejs.NodejsFunction;
  /** Every minute, to the sampling function. */
  readonly samplingRule: events.Rule;

  constructor(scope: Construct, id: string, props: PersonaTriggersProps) {
    super(scope, id);
    const stack = Stack.of(this);

    const fn = personaFunction(this, 'EvaluateFunction', {
      entry: path.join('functions', 'events', 'persona-evaluate', 'handler.ts'),
      description: 'Persona triggers: evaluate hosts at window edges and alarm state changes',
      projectRoot: props.projectRoot ?? PROJECT_ROOT,
      retention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
      memorySize: 512,
      // A window edge of a large persona evaluates each of its hosts; a few at a time.
      timeout: Duration.minutes(5),
      ...(props.sizing?.personaEvaluate ? { sizing: props.sizing.personaEvaluate } : {}),
    });
    props.storage.connect(fn, PERSONA_EVALUATION_GRANTS);
    this.evaluateFunction = fn;

    this.scheduleGroup = new scheduler.ScheduleGroup(this, 'Windows', {
      removalPolicy: props.logRemovalPolicy,
    });
    const schedules = stack.formatArn({
      service: 'scheduler',
      resource: 'schedule',
      resourceName: `${this.scheduleGroup.scheduleGroupName}/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });

    // The confused-deputy guard Scheduler documents: only this account's schedules of this
    // group may use the role.
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description: 'Assumed by EventBridge Scheduler to invoke the persona evaluate function',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: { 'aws:SourceArn': schedules },
        },
      }),
    });
    // Scheduler invokes the unqualified ARN: no version wildcard.
    this.schedulerRole.addToPolicy(
      new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [fn.functionArn] }),
    );

    this.alarmRule = new events.Rule(this, 'AlarmStateChanges', {
      description: `Hands the state changes of CloudWatch alarms named ${ALARM_PREFIX}… to persona evaluation`,
      eventPattern: {
        source: ['aws.cloudwatch'],
        detailType: ['CloudWatch Alarm State Change'],
        detail: { alarmName: events.Match.prefix(ALARM_PREFIX) },
      },
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 4, maxEventAge: Duration.hours(1) })],
    });

    const sample = personaFunction(this, 'SampleFunction', {
      entry: path.join('functions', 'events', 'persona-sample', 'handler.ts'),
      description:
        'Persona sampling: read hosts without an agent, evaluate them, and evaluate morph policies',
      projectRoot: props.projectRoot ?? PROJECT_ROOT,
      retention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
      memorySize: 512,
      // One command per host, a few hosts at a time, within the minute to the next round.
      timeout: Duration.seconds(55),
      ...(props.sizing?.personaSample ? { sizing: props.sizing.personaSample } : {}),
      layers: ['ssh'],
      // The agent's read-only check, run on hosts without an agent (core/persona/drift.ts), and
      // the target profiles morph policies detect and morph toward (core/morph/evaluate.ts).
      files: [
        { from: 'core/persona/agent/persona-agent.sh', to: 'persona-agent.sh' },
        ...targetFiles(props.projectRoot ?? PROJECT_ROOT),
      ],
      ...(props.hostsVpc ? { vpc: props.hostsVpc } : {}),
    });
    props.storage.connect(sample, PERSONA_SAMPLING_GRANTS);
    // GetMetricData has no resource-level permissions.
    sample.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['cloudwatch:GetMetricData'], resources: ['*'] }),
    );
    if (sample.role)
      Validations.of(sample.role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason: 'cloudwatch:GetMetricData (and tracing) support no resource-level permissions.',
      });
    this.sampleFunction = sample;
    this.samplingRule = new events.Rule(this, 'Sampling', {
      description:
        'Every minute, samples the hosts persona criteria need metrics of and no agent reports for',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      // A round missed is made up by the next one: no retries that would pile up.
      targets: [new targets.LambdaFunction(sample, { retryAttempts: 0, maxEventAge: Duration.minutes(1) })],
    });
  }

  /**
   * Lets a function that writes or deletes personas keep their schedules in the group: it is
   * told the group, the target and the role, may create, update and delete schedules of this
   * group only, list them, and pass the role to Scheduler only.
   */
  allowSync(fn: lambda.Function): void {
    const stack = Stack.of(this);
    fn.addEnvironment(SCHEDULE_ENV.group, this.scheduleGroup.scheduleGroupName);
    fn.addEnvironment(SCHEDULE_ENV.target, this.evaluateFunction.functionArn);
    fn.addEnvironment(SCHEDULE_ENV.role, this.schedulerRole.roleArn);
    const schedules = stack.formatArn({
      service: 'scheduler',
      resource: 'schedule',
      resourceName: `${this.scheduleGroup.scheduleGroupName}/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'scheduler:CreateSchedule',
          'scheduler:UpdateSchedule',
          'scheduler:DeleteSchedule',
          'scheduler:GetSchedule',
        ],
        resources: [schedules],
      }),
    );
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['scheduler:ListSchedules'], resources: ['*'] }));
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['iam:PassRole'],
        resources: [this.schedulerRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
      }),
    );
    if (fn.role) {
      Validations.of(fn.role).acknowledge(
        {
          id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/${stack.resolve(this.scheduleGroup.scheduleGroupName)}/*]`,
          reason:
            "Schedule names are derived from persona names at run time; the wildcard covers this one schedule group's schedules.",
        },
        {
          id: 'AwsSolutions-IAM5[Resource::*]',
          reason: 'scheduler:ListSchedules (and tracing) support no resource-level permissions.',
        },
      );
    }
  }
}
