import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { InvalidInputError, type Issue } from '../core/errors.js';
import { OPERATION_TAG } from '../core/platform/ec2.js';

// The tag the EC2 adaptor puts on every instance, volume, security group and snapshot it creates,
// valued with the operation's id: the clone task may change or delete only what carries it.
export { OPERATION_TAG };

/** The variable that tells the clone task which secret holds its Azure credentials. */
export const AZURE_CREDENTIALS_ENV = 'PERSONA_AZURE_CREDENTIALS_SECRET';

/** What a deployer decides about clones to AWS and Azure. */
export interface CloneCloudProps {
  /**
   * Subnets clones to AWS may launch instances into.
   * @default any subnet of the stack's account and region: the subnet is named by each clone
   * request, and the other conditions (Persona's tag, encrypted volumes, IMDSv2, the named
   * instance roles only) hold wherever the instance lands
   */
  readonly cloneSubnets?: readonly ec2.ISubnet[];
  /**
   * Roles of the instance profiles clones to AWS launch with: the role needs
   * AmazonSSMManagedInstanceCore, because the clone is reached over SSM. The clone task may pass
   * these roles to EC2 and no others.
   * @default none: the task may pass no role, so clones to AWS fail with AccessDenied
   */
  readonly cloneInstanceRoles?: readonly iam.IRole[];
  /**
   * Secret holding the Azure service principal clones to Azure use, as JSON
   * `{"tenantId", "clientId", "clientSecret", "subscriptionId"}`. The task reads it at run time;
   * only its ARN is in the function's configuration.
   * @default none: clones to Azure have no credentials
   */
  readonly azureCredentialsSecret?: secretsmanager.ISecret;
}

/** Only the CloneCloudProps of a larger props object (PersonaPlatformProps). */
export function pickCloneCloudProps(props: CloneCloudProps): CloneCloudProps {
  const { cloneSubnets, cloneInstanceRoles, azureCredentialsSecret } = props;
  return {
    ...(cloneSubnets ? { cloneSubnets } : {}),
    ...(cloneInstanceRoles ? { cloneInstanceRoles } : {}),
    ...(azureCredentialsSecret ? { azureCredentialsSecret } : {}),
  };
}

/** The context keys `cdk deploy -c key=value` sets CloneCloudProps with (cloneCloudContext). */
export const CLONE_CLOUD_CONTEXT = {
  subnets: 'cloneSubnets',
  instanceRoles: 'cloneInstanceRoles',
  azureSecret: 'azureCredentialsSecret',
} as const;

const SUBNET_ID = /^subnet-[0-9a-f]{8}([0-9a-f]{9})?$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+-[A-Za-z0-9]{6}$/;
const SECRET_NAME = /^[\w/+=.@-]{1,512}$/;

/**
 * CloneCloudProps from the app's context, for a stack deployed with `cdk deploy` rather than
 * embedded: `cloneSubnets` and `cloneInstanceRoles` are comma-separated subnet ids and role
 * ARNs, `azureCredentialsSecret` a secret's complete ARN or its name. The imports are made in
 * `scope` (the stack). Every malformed entry is named at once, before anything is built.
 */
export function cloneCloudContext(scope: Construct): CloneCloudProps {
  const issues: Issue[] = [];
  const list = (key: string) => {
    const value: unknown = scope.node.tryGetContext(key);
    if (value === undefined || value === '') return [];
    if (typeof value !== 'string') {
      issues.push({ path: key, message: 'expected a comma-separated string' });
      return [];
    }
    return [
      ...new Set(
        value
          .split(',')
          .map((v) => v.trim())
          .filter((v) => v !== ''),
      ),
    ];
  };
  const subnetIds = list(CLONE_CLOUD_CONTEXT.subnets);
  subnetIds.forEach((id, i) => {
    if (!SUBNET_ID.test(id))
      issues.push({
        path: `${CLONE_CLOUD_CONTEXT.subnets}[${i}]`,
        message: `${JSON.stringify(id)} is not a subnet id (subnet-...)`,
      });
  });
  const roleArns = list(CLONE_CLOUD_CONTEXT.instanceRoles);
  roleArns.forEach((arn, i) => {
    if (!ROLE_ARN.test(arn))
      issues.push({
        path: `${CLONE_CLOUD_CONTEXT.instanceRoles}[${i}]`,
        message: `${JSON.stringify(arn)} is not an IAM role ARN`,
      });
  });
  const secrets = list(CLONE_CLOUD_CONTEXT.azureSecret);
  const secret = secrets[0];
  if (secrets.length > 1) issues.push({ path: CLONE_CLOUD_CONTEXT.azureSecret, message: 'one secret only' });
  else if (
    secret !== undefined &&
    !SECRET_ARN.test(secret) &&
    (secret.startsWith('arn:') || !SECRET_NAME.test(secret))
  )
    issues.push({
      path: CLONE_CLOUD_CONTEXT.azureSecret,
      message: `${JSON.stringify(secret)} is neither a secret's complete ARN (with its 6-character suffix) nor a secret name`,
    });
  if (issues.length > 0)
    throw new InvalidInputError(
      `the clone context is not valid: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    );
  return {
    ...(subnetIds.length > 0
      ? { cloneSubnets: subnetIds.map((id) => ec2.Subnet.fromSubnetId(scope, `CloneSubnet-${id}`, id)) }
      : {}),
    ...(roleArns.length > 0
      ? {
          cloneInstanceRoles: roleArns.map((arn, i) =>
            iam.Role.fromRoleArn(scope, `CloneInstanceRole${i}`, arn, { mutable: false }),
          ),
        }
      : {}),
    ...(secret === undefined
      ? {}
      : {
          azureCredentialsSecret: SECRET_ARN.test(secret)
            ? secretsmanager.Secret.fromSecretCompleteArn(scope, 'AzureCredentials', secret)
            : secretsmanager.Secret.fromSecretNameV2(scope, 'AzureCredentials', secret),
        }),
  };
}

export interface CloneCloudAccessProps extends CloneCloudProps {
  /** The clone workflow's task function. */
  readonly fn: lambda.Function;
}

/**
 * What the clone task may do in EC2, SSM, IAM and Secrets Manager to provision a clone, reach it
 * and give it back, as one policy on the task's role. Everything that changes or deletes is
 * scoped to resources carrying OPERATION_TAG, which the task can put only on what it creates.
 *
 * Run Command itself (ssm:SendCommand, GetCommandInvocation, CancelCommand) is already granted
 * by the way to hosts the capture and clone tasks share (PersonaWorkflows.reachHosts): it covers
 * every EC2 instance, launched ones included.
 */
export class CloneCloudAccess extends Construct {
  readonly policy: iam.Policy;

  constructor(scope: Construct, id: string, props: CloneCloudAccessProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const ec2Arn = (resource: string, resourceName = '*', account?: string) =>
      stack.formatArn({
        service: 'ec2',
        resource,
        resourceName,
        ...(account !== undefined ? { account } : {}),
      });
    const tagged = { Null: { [`aws:ResourceTag/${OPERATION_TAG}`]: 'false' } };
    const tagging = { Null: { [`aws:RequestTag/${OPERATION_TAG}`]: 'false' } };
    const instances = ec2Arn('instance');
    const volumes = ec2Arn('volume');
    const securityGroups = ec2Arn('security-group');
    // Public AMIs and their snapshots have no account in their ARN.
    const images = ec2Arn('image', '*', '');
    const snapshots = ec2Arn('snapshot', '*', '');
    const subnets = props.cloneSubnets?.length
      ? props.cloneSubnets.map((s) => ec2Arn('subnet', s.subnetId))
      : [ec2Arn('subnet')];

    const statements = [
      // RunInstances is authorised once per resource it touches; each statement names the
      // resource types whose condition keys it uses.
      new iam.PolicyStatement({
        sid: 'LaunchTaggedInstancesWithImdsV2',
        actions: ['ec2:RunInstances'],
        resources: [instances],
        conditions: { ...tagging, StringEquals: { 'ec2:MetadataHttpTokens': 'required' } },
      }),
      new iam.PolicyStatement({
        sid: 'LaunchWithTaggedEncryptedVolumes',
        actions: ['ec2:RunInstances'],
        resources: [volumes],
        conditions: { ...tagging, Bool: { 'ec2:Encrypted': 'true' } },
      }),
      new iam.PolicyStatement({
        sid: 'LaunchInAllowedSubnets',
        actions: ['ec2:RunInstances'],
        resources: [...subnets, ec2Arn('network-interface'), securityGroups, images, snapshots],
      }),
      // Tags may be written only by the call that creates what they tag: nothing existing can be
      // given Persona's tag and so become changeable by the task.
      new iam.PolicyStatement({
        sid: 'TagOnLaunch',
        actions: ['ec2:CreateTags'],
        resources: [instances, volumes],
        conditions: { ...tagging, StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
      }),
      new iam.PolicyStatement({
        sid: 'TagOnSecurityGroupCreation',
        actions: ['ec2:CreateTags'],
        resources: [securityGroups],
        conditions: { ...tagging, StringEquals: { 'ec2:CreateAction': 'CreateSecurityGroup' } },
      }),
      new iam.PolicyStatement({
        sid: 'TagOnSnapshotCreation',
        actions: ['ec2:CreateTags'],
        resources: [snapshots],
        conditions: { ...tagging, StringEquals: { 'ec2:CreateAction': 'CreateSnapshots' } },
      }),
      new iam.PolicyStatement({
        sid: 'CreateTaggedSecurityGroups',
        actions: ['ec2:CreateSecurityGroup'],
        resources: [securityGroups],
        conditions: tagging,
      }),
      new iam.PolicyStatement({
        sid: 'CreateSecurityGroupsInVpcs',
        actions: ['ec2:CreateSecurityGroup'],
        resources: [ec2Arn('vpc')],
      }),
      new iam.PolicyStatement({
        sid: 'ChangeTaggedSecurityGroups',
        actions: ['ec2:AuthorizeSecurityGroupIngress', 'ec2:DeleteSecurityGroup'],
        resources: [securityGroups],
        conditions: tagged,
      }),
      new iam.PolicyStatement({
        sid: 'ChangeTaggedInstances',
        actions: [
          'ec2:TerminateInstances',
          'ec2:StopInstances',
          'ec2:StartInstances',
          'ec2:ModifyInstanceAttribute',
        ],
        resources: [instances],
        conditions: tagged,
      }),
      new iam.PolicyStatement({
        sid: 'SnapshotTaggedInstances',
        actions: ['ec2:CreateSnapshots'],
        resources: [instances, volumes],
        conditions: tagged,
      }),
      new iam.PolicyStatement({
        sid: 'CreateTaggedSnapshots',
        actions: ['ec2:CreateSnapshots'],
        resources: [snapshots],
        conditions: tagging,
      }),
      new iam.PolicyStatement({
        sid: 'DescribeWithoutResourceLevelPermissions',
        actions: [
          'ec2:DescribeInstances',
          'ec2:DescribeImages',
          'ec2:DescribeSecurityGroups',
          'ec2:DescribeSubnets',
          'ec2:DescribeVpcs',
          'ssm:DescribeInstanceInformation',
        ],
        resources: ['*'],
      }),
    ];

    const roles = props.cloneInstanceRoles ?? [];
    if (roles.length > 0) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'PassInstanceRolesToEc2',
          actions: ['iam:PassRole'],
          resources: roles.map((r) => r.roleArn),
          conditions: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
        }),
      );
    }

    statements.push(...azureCredentials(props.fn, props.azureCredentialsSecret));

    const role = props.fn.role;
    if (!role) throw new Error('the clone task has no role to grant its cloud access to');
    this.policy = new iam.Policy(this, 'Policy', { statements, roles: [role] });

    // cdk-nag names a finding by the resource as the template writes it (`arn:<AWS::Partition>:...`).
    const resource = (arn: string) => `AwsSolutions-IAM5[Resource::${flatten(stack.resolve(arn))}]`;
    const nag = (arn: string, reason: string) => ({ id: resource(arn), reason });
    Validations.of(this.policy).acknowledge(
      nag(
        instances,
        `Instances are launched with a new id: RunInstances requires the ${OPERATION_TAG} tag in the request, and every later change is allowed only on instances carrying it.`,
      ),
      nag(
        volumes,
        `Volumes are created at launch with new ids: only encrypted and tagged ${OPERATION_TAG}; snapshots only of tagged volumes.`,
      ),
      nag(
        securityGroups,
        `A clone's security group is created with a new id and the ${OPERATION_TAG} tag; only groups carrying it may be opened or deleted. A launch may reference any group, which it does not change.`,
      ),
      nag(
        ec2Arn('network-interface'),
        'A launch creates the network interface of the instance, with a new id.',
      ),
      nag(
        images,
        "The clone's AMI is looked up at run time (the base image, or the distribution's official image), owned by another account.",
      ),
      nag(
        snapshots,
        `A launch reads its AMI's EBS snapshots, and CreateSnapshots makes new ones (tagged ${OPERATION_TAG}); both have ids known only at run time.`,
      ),
      nag(ec2Arn('vpc'), 'The security group goes in the VPC of the subnet each clone request names.'),
      ...(props.cloneSubnets?.length
        ? []
        : [
            nag(
              ec2Arn('subnet'),
              'No cloneSubnets were given: a clone may launch into the subnet its request names; tag, encryption, IMDSv2 and instance-role conditions still apply.',
            ),
          ]),
      {
        id: resource('*'),
        reason:
          'ec2:DescribeInstances, DescribeImages, DescribeSecurityGroups, DescribeSubnets, DescribeVpcs and ssm:DescribeInstanceInformation support no resource-level permissions.',
      },
    );
  }
}

/**
 * Reading the Azure service principal (when the deployer named its secret), and telling `fn`
 * where it is: the statements, for the caller's policy.
 */
function azureCredentials(
  fn: lambda.Function,
  secret: secretsmanager.ISecret | undefined,
): iam.PolicyStatement[] {
  if (!secret) return [];
  const statements = [
    new iam.PolicyStatement({
      sid: 'ReadAzureCredentials',
      actions: ['secretsmanager:GetSecretValue'],
      // A secret known by name only has a random suffix the policy must allow for.
      resources: [secret.secretFullArn ?? `${secret.secretArn}-??????`],
    }),
  ];
  if (secret.encryptionKey) {
    statements.push(
      new iam.PolicyStatement({
        sid: 'DecryptAzureCredentials',
        actions: ['kms:Decrypt'],
        resources: [secret.encryptionKey.keyArn],
        conditions: {
          StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(fn).region}.amazonaws.com` },
        },
      }),
    );
  }
  fn.addEnvironment(AZURE_CREDENTIALS_ENV, secret.secretFullArn ?? secret.secretArn);
  return statements;
}

/** The prefix of the CloudWatch alarms a persona's thresholds become (core/orchestrator/executors/alarms.ts). */
export const PERSONA_ALARM_PREFIX = 'persona-';

export interface ResizeCloudAccessProps {
  /** The persona-switch workflow's task function. */
  readonly fn: lambda.Function;
  /** The secret of the Azure service principal, for resizing Azure hosts. @default none */
  readonly azureCredentialsSecret?: secretsmanager.ISecret;
}

/**
 * What the persona-switch task may do in the cloud: resize an instance Persona launched (stop,
 * change the type, start; the EC2 adaptor resizes only what carries OPERATION_TAG, and so may
 * the role), look instances up, keep the alarms a persona's thresholds become, and resize Azure
 * hosts with the deployer's service principal. Nothing is launched, tagged or deleted.
 */
export class ResizeCloudAccess extends Construct {
  readonly policy: iam.Policy;

  constructor(scope: Construct, id: string, props: ResizeCloudAccessProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const instances = stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });
    const alarms = stack.formatArn({
      service: 'cloudwatch',
      resource: 'alarm',
      resourceName: `${PERSONA_ALARM_PREFIX}*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const statements = [
      new iam.PolicyStatement({
        sid: 'ResizeTaggedInstances',
        actions: ['ec2:StopInstances', 'ec2:StartInstances', 'ec2:ModifyInstanceAttribute'],
        resources: [instances],
        conditions: { Null: { [`aws:ResourceTag/${OPERATION_TAG}`]: 'false' } },
      }),
      new iam.PolicyStatement({
        sid: 'DescribeInstancesWithoutResourceLevelPermissions',
        actions: ['ec2:DescribeInstances'],
        resources: ['*'],
      }),
      new iam.PolicyStatement({
        sid: 'KeepPersonaAlarms',
        actions: ['cloudwatch:PutMetricAlarm', 'cloudwatch:DeleteAlarms', 'cloudwatch:DescribeAlarms'],
        resources: [alarms],
      }),
      ...azureCredentials(props.fn, props.azureCredentialsSecret),
    ];
    const role = props.fn.role;
    if (!role) throw new Error('the persona-switch task has no role to grant its cloud access to');
    this.policy = new iam.Policy(this, 'Policy', { statements, roles: [role] });

    const resource = (arn: string) => `AwsSolutions-IAM5[Resource::${flatten(stack.resolve(arn))}]`;
    Validations.of(this.policy).acknowledge(
      {
        id: resource(instances),
        reason: `Hosts are registered at run time: stop, start and a type change are allowed only on instances carrying the ${OPERATION_TAG} tag, which only Persona's launches put.`,
      },
      {
        id: resource(alarms),
        reason: `A persona's thresholds are alarms Persona names ${PERSONA_ALARM_PREFIX}<host>-...; the task manages those only.`,
      },
      { id: resource('*'), reason: 'ec2:DescribeInstances supports no resource-level permissions.' },
    );
  }
}

/** A resolved value as cdk-nag prints it: references as `<LogicalId>`, joins concatenated. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if (typeof v.Ref === 'string') return `<${v.Ref}>`;
  const att = v['Fn::GetAtt'] as [string, string] | undefined;
  if (att) return `<${att[0]}.${att[1]}>`;
  const join = v['Fn::Join'] as [string, unknown[]] | undefined;
  if (join) return join[1].map(flatten).join(join[0]);
  return JSON.stringify(value);
}
