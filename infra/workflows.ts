import * as path from 'node:path';
import { ArnFormat, Duration, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { WORKFLOWS, type WorkflowName } from '../core/operation/workflows.js';
import {
  HOST_PERSONAS_TABLE,
  PERSONAS_TABLE,
  SSM_OUTPUT_BUCKET,
  SSM_OUTPUT_PREFIX,
} from '../core/storage/definitions.js';
import { PROJECT_ROOT } from './api.js';
import { CloneCloudAccess, type CloneCloudProps, ResizeCloudAccess } from './cloud.js';
import { type FunctionSizings, type PersonaFunctionProps, personaFunction } from './function.js';
import {
  CAPTURE_TASK_GRANTS,
  CLONE_TASK_GRANTS,
  type DataGrants,
  FAIL_OPERATION_TASK_GRANTS,
} from './permissions.js';
import type { PersonaStorage } from './storage.js';

/**
 * Where the clone task announces outcomes (functions/shared/clone.ts, EVENT_BUS): the
 * variable naming the bus, and the source and detail-type prefix its events carry.
 */
export const CLONE_EVENTS = {
  env: 'PERSONA_EVENT_BUS',
  source: 'persona',
  detailTypePrefix: 'Clone',
} as const;

/**
 * The persona-switch task: what a clone's task reaches (hosts, the journal, the operation's
 * documents, the package store), the persona it switches to, and the host's persona state and
 * default (HOST_PERSONAS_TABLE).
 */
const PERSONA_SWITCH_TASK_GRANTS: DataGrants = {
  tables: {
    ...CLONE_TASK_GRANTS.tables,
    [PERSONAS_TABLE.id]: 'read',
    [HOST_PERSONAS_TABLE.id]: 'read-write',
  },
  objects: CLONE_TASK_GRANTS.objects ?? {},
};

export interface PersonaWorkflowsProps {
  readonly storage: PersonaStorage;
  readonly logRetention: logs.RetentionDays;
  readonly logRemovalPolicy: RemovalPolicy;
  /**
   * Where capture and clone run, to reach hosts over SSH: a VPC with a route to them. Without
   * it the functions reach addresses on the internet only, and SSM-managed hosts.
   * @default none
   */
  readonly vpc?: ec2.IVpc;
  readonly vpcSubnets?: ec2.SubnetSelection;
  readonly securityGroups?: ec2.ISecurityGroup[];
  /**
   * Secrets Manager names and SSM parameter paths that credentials may come from.
   * @default 'persona/'
   */
  readonly credentialPrefix?: string;
  /** Keys of `aws-kms` credential references (PersonaPlatformProps.credentialKeys). */
  readonly credentialKeys?: readonly kms.IKey[];
  /** Subnets, instance roles and the Azure secret of clones to AWS and Azure. @default none */
  readonly cloud?: CloneCloudProps;
  readonly sizing?: Pick<FunctionSizings, 'capture' | 'clone' | 'personaSwitch' | 'failOperation'>;
  readonly projectRoot?: string;
}

/** The workflows (Step Functions state machines from statemachines/*.asl.json) and their tasks. */
export class PersonaWorkflows extends Construct {
  readonly capture: sfn.StateMachine;
  readonly captureFunction: lambda.IFunction;
  /** Clones a Profile onto a host: Validate, Provision, Baseline, Plan, Apply, Start, Verify, Record, Rollback. */
  readonly clone: sfn.StateMachine;
  /** One function for every step of the clone workflow. */
  readonly cloneFunction: lambda.IFunction;
  /** Switches a host to a persona or back to its default: Validate, Baseline, Plan, Resize, Apply, Verify, Record, Rollback. */
  readonly personaSwitch: sfn.StateMachine;
  readonly personaSwitchFunction: lambda.IFunction;
  /** What the clone task may do in EC2, SSM and IAM, and which Azure secret it may read. */
  readonly cloneCloudAccess: CloneCloudAccess;
  /** What the persona-switch task may do to resize a host and keep its alarms. */
  readonly personaSwitchCloudAccess: ResizeCloudAccess;
  /** The workflows' failure path: ends an operation that its task could not end itself. */
  readonly failOperationFunction: lambda.IFunction;
  /** Where managed nodes write Run Command output over SSM's inline limits (SSM_OUTPUT_BUCKET). */
  readonly ssmOutputBucket: s3.Bucket;
  /**
   * What a managed node needs to write its command output there: attach it to the instance
   * profile's role of EC2 instances, and to the service role of hybrid activations, that
   * Persona captures or clones onto over SSM. Without it, output over the inline limits cannot
   * be read.
   */
  readonly ssmNodePolicy: iam.ManagedPolicy;
  /**
   * Clone outcomes (`Clone Succeeded`, `Clone Rolled Back`, `Clone Rollback Incomplete`,
   * `Clone Planned`), as the EventBridge events the clone task puts on the default bus:
   * subscribe to it to be told.
   */
  readonly notificationTopic: sns.Topic;
  /** The default bus's rule that forwards the clone events to the topic. */
  readonly notificationRule: events.Rule;

  private readonly props: PersonaWorkflowsProps;
  private readonly stateMachines: Partial<Record<WorkflowName, sfn.StateMachine>>;

  constructor(scope: Construct, id: string, props: PersonaWorkflowsProps) {
    super(scope, id);
    this.props = props;
    const projectRoot = props.projectRoot ?? PROJECT_ROOT;
    const common = { projectRoot, retention: props.logRetention, logRemovalPolicy: props.logRemovalPolicy };
    const vpc: Pick<PersonaFunctionProps, 'vpc'> = props.vpc
      ? {
          vpc: {
            vpc: props.vpc,
            ...(props.vpcSubnets ? { vpcSubnets: props.vpcSubnets } : {}),
            ...(props.securityGroups ? { securityGroups: props.securityGroups } : {}),
          },
        }
      : {};

    // Run Command output over the inline limits (the capture script's sections, the snapshot's
    // tar archive) goes through this bucket. It holds what hosts printed, secrets before they
    // are sealed included: the functions that reach hosts delete each object once read, and
    // what a failed run left behind expires after a day. S3-managed encryption, because the
    // nodes write with their own credentials and should not need a grant on Persona's key.
    const ssmOutput = new s3.Bucket(this, SSM_OUTPUT_BUCKET.id, {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: props.storage.accessLogsBucket as s3.IBucket,
      serverAccessLogsPrefix: `${SSM_OUTPUT_BUCKET.id.toLowerCase()}/`,
      lifecycleRules: [
        { expiration: Duration.days(1), abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      removalPolicy: props.logRemovalPolicy,
    });
    this.ssmOutputBucket = ssmOutput;
    this.ssmNodePolicy = new iam.ManagedPolicy(this, 'SsmNodePolicy', {
      description: 'Lets a managed node that Persona reaches over SSM write its Run Command output',
      statements: [
        new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [this.ssmOutputObjects] }),
        // The agent reads the bucket's encryption settings before it uploads.
        new iam.PolicyStatement({
          actions: ['s3:GetEncryptionConfiguration'],
          resources: [ssmOutput.bucketArn],
        }),
      ],
    });
    Validations.of(this.ssmNodePolicy).acknowledge(this.ssmOutputAcknowledgement);

    const capture = personaFunction(this, 'CaptureTask', {
      ...common,
      entry: path.join('functions', 'steps', 'capture', 'handler.ts'),
      description: 'Persona workflow task: capture a host',
      memorySize: 1024,
      // A capture is one script run and one tar stream: minutes at most, even for a large host.
      timeout: Duration.minutes(14),
      ...(props.sizing?.capture ? { sizing: props.sizing.capture } : {}),
      layers: ['ssh'],
      ...vpc,
    });
    props.storage.connect(capture, CAPTURE_TASK_GRANTS);
    this.reachHosts(capture);
    this.captureFunction = capture;

    const clone = personaFunction(this, 'CloneTask', {
      ...common,
      entry: path.join('functions', 'steps', 'clone', 'handler.ts'),
      description: 'Persona workflow task: clone a Profile onto a host, or roll the clone back',
      memorySize: 1024,
      // Lambda's limit. Baseline, Plan, Apply, Verify and Rollback give their Task as long: one
      // step is one invocation, and the journal lets a rollback take over from a dead Apply.
      timeout: Duration.minutes(15),
      ...(props.sizing?.clone ? { sizing: props.sizing.clone } : {}),
      layers: ['ssh', 'azure'],
      ...vpc,
    });
    props.storage.connect(clone, CLONE_TASK_GRANTS);
    this.reachHosts(clone);
    this.cloneCloudAccess = new CloneCloudAccess(this, 'CloneCloudAccess', { fn: clone, ...props.cloud });
    this.cloneFunction = clone;

    const personaSwitch = personaFunction(this, 'PersonaSwitchTask', {
      ...common,
      entry: path.join('functions', 'steps', 'persona-switch', 'handler.ts'),
      description:
        'Persona workflow task: switch a host to a persona or back to its default, or roll it back',
      memorySize: 1024,
      // Resize stops and starts an instance: minutes. One step is one invocation, as for clone.
      timeout: Duration.minutes(15),
      ...(props.sizing?.personaSwitch ? { sizing: props.sizing.personaSwitch } : {}),
      layers: ['ssh', 'azure'],
      ...vpc,
    });
    props.storage.connect(personaSwitch, PERSONA_SWITCH_TASK_GRANTS);
    this.reachHosts(personaSwitch);
    // Resize only, on instances Persona launched, and the persona's alarms: not the clone's set.
    this.personaSwitchCloudAccess = new ResizeCloudAccess(this, 'PersonaSwitchCloudAccess', {
      fn: personaSwitch,
      ...(props.cloud?.azureCredentialsSecret
        ? { azureCredentialsSecret: props.cloud.azureCredentialsSecret }
        : {}),
    });
    this.personaSwitchFunction = personaSwitch;

    const fail = personaFunction(this, 'FailOperationTask', {
      ...common,
      entry: path.join('functions', 'steps', 'fail-operation', 'handler.ts'),
      description: 'Persona workflow task: record a failed operation',
      memorySize: 256,
      timeout: Duration.seconds(30),
      ...(props.sizing?.failOperation ? { sizing: props.sizing.failOperation } : {}),
    });
    props.storage.connect(fail, FAIL_OPERATION_TASK_GRANTS);
    this.failOperationFunction = fail;

    for (const role of [capture.role, clone.role, personaSwitch.role, fail.role]) {
      if (role)
        Validations.of(role).acknowledge({
          id: 'AwsSolutions-IAM5[Resource::*]',
          reason:
            'Tracing, VPC network interfaces and SSM command results (GetCommandInvocation, CancelCommand) support no resource-level permissions.',
        });
    }

    const tasks = { capture, clone, 'persona-switch': personaSwitch, 'fail-operation': fail } as const;
    this.capture = this.stateMachine('Capture', 'capture', tasks);
    this.clone = this.stateMachine('Clone', 'clone', tasks);
    this.personaSwitch = this.stateMachine('PersonaSwitch', 'persona-switch', tasks);
    this.stateMachines = { capture: this.capture, clone: this.clone, 'persona-switch': this.personaSwitch };

    const notifications = this.notifications(clone);
    this.notificationTopic = notifications.topic;
    this.notificationRule = notifications.rule;
  }

  /**
   * A workflow whose construct lives apart (infra/morph.ts), built from its ASL file like these,
   * its placeholders bound to `functions` (by the task names of WORKFLOWS).
   */
  addWorkflow(
    id: string,
    workflow: WorkflowName,
    functions: Readonly<Record<string, lambda.Function>>,
  ): sfn.StateMachine {
    const machine = this.stateMachine(id, workflow, functions);
    this.stateMachines[workflow] = machine;
    return machine;
  }

  /** Lets an API function start one workflow (and tells it that state machine's ARN). */
  allowStart(fn: lambda.Function, workflow: WorkflowName): void {
    const machine = this.stateMachines[workflow];
    if (machine === undefined) throw new Error(`the ${workflow} workflow is not part of this platform`);
    // The variable functions/shared/workflows.ts reads for this workflow.
    fn.addEnvironment(
      `${workflow.toUpperCase().replaceAll('-', '_')}_STATE_MACHINE_ARN`,
      machine.stateMachineArn,
    );
    machine.grantStartExecution(fn);
  }

  /** Gives another function (installing a host's agent) the tasks' way to hosts. */
  allowReachHosts(fn: lambda.Function): void {
    this.reachHosts(fn);
  }

  /** What a task needs to reach hosts: credentials, SSH or SSM, and the snapshot store's key. */
  private reachHosts(fn: lambda.Function): void {
    const { storage, credentialKeys } = this.props;
    const prefix = this.props.credentialPrefix ?? 'persona/';
    const stack = Stack.of(this);
    // The snapshot store's master key is a data key under Persona's key (FORMAT.md).
    storage.key.grant(fn, 'kms:GenerateDataKey', 'kms:Decrypt');
    fn.addEnvironment('PERSONA_KEY_ID', storage.key.keyArn);
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        resources: [
          stack.formatArn({
            service: 'secretsmanager',
            resource: 'secret',
            resourceName: `${prefix}*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
    if (credentialKeys && credentialKeys.length > 0) {
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['kms:Decrypt'],
          resources: credentialKeys.map((k) => k.keyArn),
          // Only ciphertexts bound to a host (core/secret/resolve.ts): the role cannot open
          // anything else encrypted under these keys.
          conditions: { Null: { 'kms:EncryptionContext:persona:host': 'false' } },
        }),
      );
    }
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:GetParameter'],
        resources: [stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: `${prefix}*` })],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: [
          stack.formatArn({
            service: 'ssm',
            account: '',
            resource: 'document',
            resourceName: 'AWS-RunShellScript',
          }),
          stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' }),
          stack.formatArn({ service: 'ssm', resource: 'managed-instance', resourceName: '*' }),
        ],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:GetCommandInvocation', 'ssm:CancelCommand'],
        resources: ['*'],
      }),
    );
    fn.addEnvironment(SSM_OUTPUT_BUCKET.env, this.ssmOutputBucket.bucketName);
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:DeleteObject'],
        resources: [this.ssmOutputObjects],
      }),
    );
    Validations.of(fn.role as iam.IRole).acknowledge(
      this.ssmOutputAcknowledgement,
      {
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${prefix}*]`,
        reason: "Host credentials are read from the secrets under Persona's prefix only.",
      },
      {
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/${prefix}*]`,
        reason: "Host credentials are read from the parameters under Persona's prefix only.",
      },
      {
        id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]',
        reason:
          'Capture and clone reach any registered EC2 instance through SSM Run Command; hosts are registered at run time.',
      },
      {
        id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:managed-instance/*]',
        reason: 'Capture and clone reach any registered hybrid-activated machine through SSM Run Command.',
      },
    );
  }

  private get ssmOutputObjects(): string {
    return this.ssmOutputBucket.arnForObjects(`${SSM_OUTPUT_PREFIX}/*`);
  }

  private get ssmOutputAcknowledgement() {
    const bucket = this.ssmOutputBucket.node.defaultChild as s3.CfnBucket;
    return {
      id: `AwsSolutions-IAM5[Resource::<${Stack.of(this).resolve(bucket.logicalId)}.Arn>/${SSM_OUTPUT_PREFIX}/*]`,
      reason:
        'Run Command output keys are made by SSM at run time (<prefix>/<CommandId>/<InstanceId>/...): access is to the SSM output prefix of this one bucket.',
    };
  }

  /**
   * A Standard state machine from the workflow's ASL file, each placeholder filled with the ARN
   * of the task function it names (WORKFLOWS), logged and traced.
   */
  private stateMachine(
    id: string,
    workflow: WorkflowName,
    functions: Readonly<Record<string, lambda.Function>>,
  ): sfn.StateMachine {
    const spec = WORKFLOWS[workflow];
    const stack = Stack.of(this);
    const bound = Object.entries(spec.tasks).map(([placeholder, task]) => {
      const fn = functions[task];
      if (!fn) throw new Error(`the ${workflow} workflow names task ${task}, which is not built`);
      return [placeholder, fn] as const;
    });
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      retention: this.props.logRetention,
      removalPolicy: this.props.logRemovalPolicy,
    });
    const machine = new sfn.StateMachine(this, id, {
      definitionBody: sfn.DefinitionBody.fromFile(
        path.join(this.props.projectRoot ?? PROJECT_ROOT, spec.definition),
      ),
      definitionSubstitutions: Object.fromEntries(
        bound.map(([placeholder, fn]) => [placeholder, fn.functionArn]),
      ),
      stateMachineType: sfn.StateMachineType.STANDARD,
      tracingEnabled: true,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
      // No execution timeout: CDK does not apply one to a definition read from a file, and one
      // would stop an execution without running its Catch, leaving the operation RUNNING. Each
      // Task's own TimeoutSeconds bounds the run instead (test/core/operation/workflow.test.ts).
    });
    Validations.of(machine.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Step Functions needs X-Ray and CloudWatch Logs delivery actions (logs:CreateLogDelivery and friends), which support no resource-level permissions.',
    });
    for (const [, fn] of bound) {
      fn.grantInvoke(machine);
      Validations.of(machine.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${stack.resolve((fn.node.defaultChild as lambda.CfnFunction).logicalId)}.Arn>:*]`,
        reason: `Step Functions invokes the ${workflow} workflow's task functions by qualified ARN (any version or alias of these functions).`,
      });
    }
    return machine;
  }

  /**
   * The clone task may put events on the account's default bus, and nowhere else; a rule there
   * forwards Persona's clone events to an SNS topic that people and systems subscribe to.
   */
  private notifications(clone: lambda.Function): { topic: sns.Topic; rule: events.Rule } {
    const stack = Stack.of(this);
    const bus = events.EventBus.fromEventBusName(this, 'DefaultBus', 'default');
    bus.grantPutEventsTo(clone);
    clone.addEnvironment(CLONE_EVENTS.env, bus.eventBusArn);

    // A key of its own rather than Persona's data key: EventBridge can publish to an encrypted
    // topic only under a customer-managed key whose policy lets events.amazonaws.com use it,
    // and that grant should not reach the key of the tables and snapshots (which may also be
    // the caller's own key, whose policy this stack cannot change).
    const key = new kms.Key(this, 'NotificationKey', {
      description: 'Persona notifications: the clone outcome topic',
      enableKeyRotation: true,
      removalPolicy: this.props.logRemovalPolicy,
    });
    const topic = new sns.Topic(this, 'Notifications', {
      displayName: 'Persona clone outcomes',
      masterKey: key,
      enforceSSL: true,
    });
    const rule = new events.Rule(this, 'CloneOutcomes', {
      description: 'Persona clone outcomes to the notification topic',
      eventBus: bus,
      eventPattern: {
        source: [CLONE_EVENTS.source],
        detailType: events.Match.prefix(CLONE_EVENTS.detailTypePrefix),
      },
    });
    rule.addTarget({ bind: () => ({ arn: topic.topicArn }) });
    // Written here rather than by the SNS target, which allows any rule of any account.
    topic.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: { ArnEquals: { 'aws:SourceArn': rule.ruleArn } },
      }),
    );
    // SNS encrypts each message under the topic's ARN as encryption context. The topic's own ARN
    // cannot appear here (the topic depends on the key), so the context names this account's
    // topics in this region; the key is used by this one topic.
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
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
    return { topic, rule };
  }
}
