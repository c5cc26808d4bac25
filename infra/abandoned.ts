import * as path from 'node:path';
import { ArnFormat, Duration, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { ABANDONED_ENV, STOPPED_STATUSES } from '../core/operation/abandoned.js';
import { OPERATIONS_TABLE } from '../core/storage/definitions.js';
import { PROJECT_ROOT } from './api.js';
import { personaFunction } from './function.js';
import type { DataGrants } from './permissions.js';
import type { PersonaStorage } from './storage.js';

/** Both functions read and end operations, and nothing else of Persona's data. */
export const ABANDONED_OPERATION_GRANTS: DataGrants = { tables: { [OPERATIONS_TABLE.id]: 'read-write' } };

export interface AbandonedOperationsProps {
  readonly storage: PersonaStorage;
  /** Persona's workflows: their stopped executions are watched, their executions looked up. */
  readonly stateMachines: readonly sfn.StateMachine[];
  readonly logRetention: logs.RetentionDays;
  readonly logRemovalPolicy: RemovalPolicy;
  readonly projectRoot?: string;
}

/**
 * No operation stays PENDING or RUNNING forever: a rule hands every execution of Persona's
 * workflows that FAILED, TIMED_OUT or was ABORTED to a function that fails its operation if
 * the workflow did not end it (functions/events/operation-failed), and every 15 minutes a
 * sweeper fails the open operations older than half an hour whose execution is not running
 * (functions/events/operation-sweeper). core/operation/abandoned.ts says how.
 */
export class AbandonedOperations extends Construct {
  readonly failFunction: nodejs.NodejsFunction;
  readonly stoppedExecutionsRule: events.Rule;
  readonly sweeperFunction: nodejs.NodejsFunction;
  readonly sweeperRule: events.Rule;

  constructor(scope: Construct, id: string, props: AbandonedOperationsProps) {
    super(scope, id);
    const common = {
      projectRoot: props.projectRoot ?? PROJECT_ROOT,
      retention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
      memorySize: 256,
    };

    const fail = personaFunction(this, 'FailFunction', {
      ...common,
      entry: path.join('functions', 'events', 'operation-failed', 'handler.ts'),
      description: 'Persona: fail the operation of a workflow execution that stopped without ending it',
      timeout: Duration.seconds(30),
    });
    props.storage.connect(fail, ABANDONED_OPERATION_GRANTS);
    this.failFunction = fail;
    this.stoppedExecutionsRule = new events.Rule(this, 'StoppedExecutions', {
      description:
        "Hands Persona's workflow executions that failed, timed out or were aborted to the function that fails their operation",
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          status: [...STOPPED_STATUSES],
          stateMachineArn: props.stateMachines.map((m) => m.stateMachineArn),
        },
      },
      // Retried for a while: the sweeper is the last resort, half an hour later.
      targets: [new targets.LambdaFunction(fail, { retryAttempts: 8, maxEventAge: Duration.hours(2) })],
    });

    const sweeper = personaFunction(this, 'SweeperFunction', {
      ...common,
      entry: path.join('functions', 'events', 'operation-sweeper', 'handler.ts'),
      description: 'Persona: fail the operations left open whose workflow execution is not running',
      timeout: Duration.minutes(2),
    });
    props.storage.connect(sweeper, ABANDONED_OPERATION_GRANTS);
    sweeper.addEnvironment(
      ABANDONED_ENV.stateMachines,
      props.stateMachines.map((m) => m.stateMachineArn).join(','),
    );
    const stack = Stack.of(this);
    sweeper.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['states:DescribeExecution'],
        resources: props.stateMachines.map((m) =>
          stack.formatArn({
            service: 'states',
            resource: 'execution',
            resourceName: `${m.stateMachineName}:*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ),
      }),
    );
    if (sweeper.role)
      Validations.of(sweeper.role).acknowledge(
        ...props.stateMachines.map((m) => ({
          id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<${stack.resolve((m.node.defaultChild as sfn.CfnStateMachine).logicalId)}.Name>:*]`,
          reason: `Executions are named after operations at run time; the sweeper describes the executions of the ${m.node.id} workflow only.`,
        })),
      );
    this.sweeperFunction = sweeper;
    this.sweeperRule = new events.Rule(this, 'Sweep', {
      description: 'Every 15 minutes, fails the operations left open whose workflow execution is not running',
      schedule: events.Schedule.rate(Duration.minutes(15)),
      // The next sweep makes up a missed one.
      targets: [new targets.LambdaFunction(sweeper, { retryAttempts: 0, maxEventAge: Duration.minutes(15) })],
    });
  }
}
