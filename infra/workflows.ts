import * as path from 'node:path';
import { ArnFormat, Duration, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { WORKFLOWS } from '../core/operation/workflows.js';
import { SSM_OUTPUT_BUCKET, SSM_OUTPUT_PREFIX } from '../core/storage/definitions.js';
import { PROJECT_ROOT } from './api.js';
import { personaFunction } from './function.js';
import { CAPTURE_TASK_GRANTS, FAIL_OPERATION_TASK_GRANTS } from './permissions.js';
import type { PersonaStorage } from './storage.js';

export interface PersonaWorkflowsProps {
  readonly storage: PersonaStorage;
  readonly logRetention: logs.RetentionDays;
  readonly logRemovalPolicy: RemovalPolicy;
  /**
   * Where capture runs, to reach hosts over SSH: a VPC with a route to them. Without it the
   * function reaches addresses on the internet only, and SSM-managed hosts.
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
  readonly projectRoot?: string;
}

/** The workflows (Step Functions state machines from statemachines/*.asl.json) and their tasks. */
export class PersonaWorkflows extends Construct {
  readonly capture: sfn.StateMachine;
  readonly captureFunction: lambda.IFunction;
  /** The workflows' failure path: ends an operation that its task could not end itself. */
  readonly failOperationFunction: lambda.IFunction;
  /** Where managed nodes write Run Command output over SSM's inline limits (SSM_OUTPUT_BUCKET). */
  readonly ssmOutputBucket: s3.Bucket;
  /**
   * What a managed node needs to write its command output there: attach it to the instance
   * profile's role of EC2 instances, and to the service role of hybrid activations, that
   * Persona captures over SSM. Without it, output over the inline limits cannot be read.
   */
  readonly ssmNodePolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: PersonaWorkflowsProps) {
    super(scope, id);
    const projectRoot = props.projectRoot ?? PROJECT_ROOT;
    const prefix = props.credentialPrefix ?? 'persona/';
    const common = { projectRoot, retention: props.logRetention, logRemovalPolicy: props.logRemovalPolicy };

    const capture = personaFunction(this, 'CaptureTask', {
      ...common,
      entry: path.join('functions', 'steps', 'capture', 'handler.ts'),
      description: 'Persona workflow task: capture a host',
      memorySize: 1024,
      // A capture is one script run and one tar stream: minutes at most, even for a large host.
      timeout: Duration.minutes(14),
      // ssh2's optional native add-ons: it falls back to Node's own crypto without them.
      externalModules: ['cpu-features', '*.node'],
      ...(props.vpc
        ? {
            vpc: {
              vpc: props.vpc,
              ...(props.vpcSubnets ? { vpcSubnets: props.vpcSubnets } : {}),
              ...(props.securityGroups ? { securityGroups: props.securityGroups } : {}),
            },
          }
        : {}),
    });
    props.storage.connect(capture, CAPTURE_TASK_GRANTS);
    // The snapshot store's master key is a data key under Persona's key (FORMAT.md).
    props.storage.key.grant(capture, 'kms:GenerateDataKey', 'kms:Decrypt');
    capture.addEnvironment('PERSONA_KEY_ID', props.storage.key.keyArn);
    const stack = Stack.of(this);
    capture.addToRolePolicy(
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
    if (props.credentialKeys && props.credentialKeys.length > 0) {
      capture.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['kms:Decrypt'],
          resources: props.credentialKeys.map((k) => k.keyArn),
          // Only ciphertexts bound to a host (core/secret/resolve.ts): the role cannot open
          // anything else encrypted under these keys.
          conditions: { Null: { 'kms:EncryptionContext:persona:host': 'false' } },
        }),
      );
    }
    capture.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:GetParameter'],
        resources: [stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: `${prefix}*` })],
      }),
    );
    capture.addToRolePolicy(
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
    capture.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:GetCommandInvocation', 'ssm:CancelCommand'],
        resources: ['*'],
      }),
    );
    this.captureFunction = capture;

    // Run Command output over the inline limits (the capture script's sections, the snapshot's
    // tar archive) goes through this bucket. It holds what hosts printed, secrets before they
    // are sealed included: the capture function deletes each object once read, and what a
    // failed capture left behind expires after a day. S3-managed encryption, because the nodes
    // write with their own credentials and should not need a grant on Persona's key.
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
    const outputObjects = ssmOutput.arnForObjects(`${SSM_OUTPUT_PREFIX}/*`);
    capture.addEnvironment(SSM_OUTPUT_BUCKET.env, ssmOutput.bucketName);
    capture.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:GetObject', 's3:DeleteObject'], resources: [outputObjects] }),
    );
    this.ssmNodePolicy = new iam.ManagedPolicy(this, 'SsmNodePolicy', {
      description: 'Lets a managed node that Persona captures over SSM write its Run Command output',
      statements: [
        new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [outputObjects] }),
        // The agent reads the bucket's encryption settings before it uploads.
        new iam.PolicyStatement({
          actions: ['s3:GetEncryptionConfiguration'],
          resources: [ssmOutput.bucketArn],
        }),
      ],
    });
    const outputObjectsAck = {
      id: `AwsSolutions-IAM5[Resource::<${stack.resolve((ssmOutput.node.defaultChild as s3.CfnBucket).logicalId)}.Arn>/${SSM_OUTPUT_PREFIX}/*]`,
      reason:
        'Run Command output keys are made by SSM at run time (<prefix>/<CommandId>/<InstanceId>/...): access is to the SSM output prefix of this one bucket.',
    };
    Validations.of(this.ssmNodePolicy).acknowledge(outputObjectsAck);

    const fail = personaFunction(this, 'FailOperationTask', {
      ...common,
      entry: path.join('functions', 'steps', 'fail-operation', 'handler.ts'),
      description: 'Persona workflow task: record a failed operation',
      memorySize: 256,
      timeout: Duration.seconds(30),
    });
    props.storage.connect(fail, FAIL_OPERATION_TASK_GRANTS);
    this.failOperationFunction = fail;

    const logGroup = new logs.LogGroup(this, 'CaptureLogs', {
      retention: props.logRetention,
      removalPolicy: props.logRemovalPolicy,
    });
    const spec = WORKFLOWS.capture;
    this.capture = new sfn.StateMachine(this, 'Capture', {
      definitionBody: sfn.DefinitionBody.fromFile(path.join(projectRoot, spec.definition)),
      definitionSubstitutions: {
        [Object.keys(spec.tasks)[0] as string]: capture.functionArn,
        [Object.keys(spec.tasks)[1] as string]: fail.functionArn,
      },
      tracingEnabled: true,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
      // No execution timeout: CDK does not apply one to a definition read from a file, and one
      // would stop an execution without running its Catch, leaving the operation RUNNING. Each
      // Task's own TimeoutSeconds bounds the run instead (test/core/operation/workflow.test.ts).
    });
    capture.grantInvoke(this.capture);
    fail.grantInvoke(this.capture);

    for (const role of [capture.role, fail.role]) {
      if (role)
        Validations.of(role).acknowledge({
          id: 'AwsSolutions-IAM5[Resource::*]',
          reason:
            'Tracing, VPC network interfaces and SSM command results (GetCommandInvocation, CancelCommand) support no resource-level permissions.',
        });
    }
    Validations.of(capture.role as iam.IRole).acknowledge(
      outputObjectsAck,
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
          'Capture reaches any registered EC2 instance through SSM Run Command; hosts are registered at run time.',
      },
      {
        id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:managed-instance/*]',
        reason: 'Capture reaches any registered hybrid-activated machine through SSM Run Command.',
      },
    );
    Validations.of(this.capture.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Step Functions needs X-Ray and CloudWatch Logs delivery actions (logs:CreateLogDelivery and friends), which support no resource-level permissions.',
    });
    for (const f of [capture, fail]) {
      Validations.of(this.capture.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${stack.resolve((f.node.defaultChild as lambda.CfnFunction).logicalId)}.Arn>:*]`,
        reason:
          'Step Functions invokes the task functions by qualified ARN (any version or alias of these two functions).',
      });
    }
  }

  /** Lets an API function start captures. */
  allowStart(fn: lambda.Function): void {
    fn.addEnvironment('CAPTURE_STATE_MACHINE_ARN', this.capture.stateMachineArn);
    this.capture.grantStartExecution(fn);
  }
}
