import { readFileSync } from 'node:fs';
import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { Subnet } from 'aws-cdk-lib/aws-ec2';
import { Role } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../core/errors.js';
import {
  AZURE_CREDENTIALS_ENV,
  CLONE_CLOUD_CONTEXT,
  cloneCloudContext,
  OPERATION_TAG,
} from '../../infra/cloud.js';
import type { PersonaPlatformProps } from '../../infra/platform.js';
import { PersonaStack } from '../../infra/stack.js';

const CDK_CONTEXT: Record<string, unknown> = JSON.parse(
  readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8'),
).context;

// What the EC2 adaptor and its SSM transport call (core/platform/ec2.ts), as IAM actions.
const EC2_ACTIONS = [
  'ec2:AuthorizeSecurityGroupIngress',
  'ec2:CreateSecurityGroup',
  'ec2:CreateSnapshots',
  'ec2:CreateTags',
  'ec2:DeleteSecurityGroup',
  'ec2:DescribeImages',
  'ec2:DescribeInstances',
  'ec2:DescribeSecurityGroups',
  'ec2:DescribeSubnets',
  'ec2:DescribeVpcs',
  'ec2:ModifyInstanceAttribute',
  'ec2:RunInstances',
  'ec2:StartInstances',
  'ec2:StopInstances',
  'ec2:TerminateInstances',
];
const SSM_ACTIONS = [
  'ssm:CancelCommand',
  'ssm:DescribeInstanceInformation',
  'ssm:GetCommandInvocation',
  'ssm:SendCommand',
];
/**
 * The IAM actions behind the SDK commands and paginators a file imports from one client: what
 * the code can call, read from the code itself.
 */
function sdkActions(file: string, client: 'ec2' | 'ssm'): string[] {
  const text = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
  const names = [...text.matchAll(/import\s*\{([^}]*)\}\s*from\s*'@aws-sdk\/client-(\w+)'/g)]
    .filter((m) => m[2] === client)
    .flatMap((m) => (m[1] ?? '').split(','))
    .map((n) => n.trim())
    .filter((n) => n !== '' && !n.startsWith('type '));
  return names.flatMap((n) => {
    const command = /^(\w+)Command$/.exec(n)?.[1];
    const paginated = /^paginate(\w+)$/.exec(n)?.[1];
    const action = command ?? paginated;
    return action ? [`${client}:${action}`] : [];
  });
}

/** Actions that change or delete an instance or group: allowed only on what carries the tag. */
const CHANGES = [
  'ec2:AuthorizeSecurityGroupIngress',
  'ec2:DeleteSecurityGroup',
  'ec2:ModifyInstanceAttribute',
  'ec2:StartInstances',
  'ec2:StopInstances',
  'ec2:TerminateInstances',
];

const partition = { Ref: 'AWS::Partition' };
const region = { Ref: 'AWS::Region' };
const account = { Ref: 'AWS::AccountId' };
/** An EC2 ARN as CDK writes it for a stack without an explicit environment. */
const ec2Arn = (resource: string, withAccount = true) => ({
  'Fn::Join': [
    '',
    [
      'arn:',
      partition,
      ':ec2:',
      region,
      ...(withAccount ? [':', account, `:${resource}`] : [`::${resource}`]),
    ],
  ],
});
const TAGGED = { Null: { [`aws:ResourceTag/${OPERATION_TAG}`]: 'false' } };
const TAGGING = { Null: { [`aws:RequestTag/${OPERATION_TAG}`]: 'false' } };

interface Statement {
  readonly Sid?: string;
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: Record<string, Record<string, unknown>>;
}

interface Synthesized {
  readonly app: App;
  readonly stack: PersonaStack;
  readonly template: Template;
}

function synthesize(platform: PersonaPlatformProps = {}): Synthesized {
  // Configuration only: esbuild is skipped.
  const app = new App({ context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
  const stack = new PersonaStack(app, 'PersonaStack', { platform });
  return { app, stack, template: Template.fromStack(stack) };
}

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

const actionsOf = (s: Statement) => [s.Action].flat();

/** A statement with its actions and resources in one order (CDK sorts and merges them). */
function normalised(s: Statement | undefined): Statement | undefined {
  if (!s) return s;
  const sorted = (v: unknown) =>
    Array.isArray(v) ? [...v].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))) : v;
  return { ...s, Action: sorted(s.Action) as string | string[], Resource: sorted(s.Resource) };
}

/** Every statement of the policies attached to a role. */
function statementsOf({ template }: Synthesized, role: IConstruct): Statement[] {
  const ref = JSON.stringify({ Ref: logicalId(role) });
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(ref))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[])
    .map((s) => normalised(s) as Statement);
}

/** The statements of the clone task's cloud policy, by Sid. */
function cloudStatements({ template, stack }: Synthesized): Record<string, Statement> {
  const policy =
    template.findResources('AWS::IAM::Policy')[logicalId(stack.platform.workflows.cloneCloudAccess.policy)];
  const statements = (policy?.Properties.PolicyDocument.Statement ?? []) as Statement[];
  for (const s of statements) expect(s.Effect).toBe('Allow');
  return Object.fromEntries(statements.map((s) => [s.Sid, normalised(s) as Statement]));
}

const cloneRole = ({ stack }: Synthesized) => stack.platform.workflows.cloneFunction.role as IConstruct;

function cloneVariables({ template, stack }: Synthesized): Record<string, unknown> {
  return (
    template.findResources('AWS::Lambda::Function')[logicalId(stack.platform.workflows.cloneFunction)]
      ?.Properties.Environment.Variables ?? {}
  );
}

function nagFindings(app: App): string[] {
  return new AwsSolutionsChecks(app)
    .validateScope(app)
    .violations.map(
      (v) => `${v.severity} ${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
    );
}

describe('the clone task in AWS, without deployer choices', () => {
  let synthesized: Synthesized;
  let cloud: Record<string, Statement>;

  beforeAll(() => {
    synthesized = synthesize();
    cloud = cloudStatements(synthesized);
  }, 120_000);

  it('may launch an instance only with Persona’s tag in the request and IMDSv2 required', () => {
    expect(cloud.LaunchTaggedInstancesWithImdsV2).toEqual({
      Sid: 'LaunchTaggedInstancesWithImdsV2',
      Effect: 'Allow',
      Action: 'ec2:RunInstances',
      Resource: ec2Arn('instance/*'),
      Condition: { ...TAGGING, StringEquals: { 'ec2:MetadataHttpTokens': 'required' } },
    });
  });

  it('may launch only with encrypted volumes that carry Persona’s tag', () => {
    expect(cloud.LaunchWithTaggedEncryptedVolumes).toEqual({
      Sid: 'LaunchWithTaggedEncryptedVolumes',
      Effect: 'Allow',
      Action: 'ec2:RunInstances',
      Resource: ec2Arn('volume/*'),
      Condition: { ...TAGGING, Bool: { 'ec2:Encrypted': 'true' } },
    });
  });

  it('launches into any subnet of the account when no subnets are named, with the AMI, its snapshots, a group and an interface', () => {
    expect(cloud.LaunchInAllowedSubnets).toEqual(
      normalised({
        Sid: 'LaunchInAllowedSubnets',
        Effect: 'Allow',
        Action: 'ec2:RunInstances',
        Resource: [
          ec2Arn('subnet/*'),
          ec2Arn('network-interface/*'),
          ec2Arn('security-group/*'),
          ec2Arn('image/*', false),
          ec2Arn('snapshot/*', false),
        ],
      }),
    );
  });

  it('may write tags only in the call that creates what they tag, never on something that exists', () => {
    const tagging = statementsOf(synthesized, cloneRole(synthesized)).filter((s) =>
      actionsOf(s).includes('ec2:CreateTags'),
    );
    expect(tagging).toEqual(
      [
        {
          Sid: 'TagOnLaunch',
          Effect: 'Allow',
          Action: 'ec2:CreateTags',
          Resource: [ec2Arn('instance/*'), ec2Arn('volume/*')],
          Condition: { ...TAGGING, StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
        },
        {
          Sid: 'TagOnSecurityGroupCreation',
          Effect: 'Allow',
          Action: 'ec2:CreateTags',
          Resource: ec2Arn('security-group/*'),
          Condition: { ...TAGGING, StringEquals: { 'ec2:CreateAction': 'CreateSecurityGroup' } },
        },
        {
          Sid: 'TagOnSnapshotCreation',
          Effect: 'Allow',
          Action: 'ec2:CreateTags',
          Resource: ec2Arn('snapshot/*', false),
          Condition: { ...TAGGING, StringEquals: { 'ec2:CreateAction': 'CreateSnapshots' } },
        },
      ].map((x) => normalised(x as Statement)),
    );
  });

  it('may create security groups only with Persona’s tag, and open or delete only groups that carry it', () => {
    expect(cloud.CreateTaggedSecurityGroups).toMatchObject({
      Action: 'ec2:CreateSecurityGroup',
      Resource: ec2Arn('security-group/*'),
      Condition: TAGGING,
    });
    expect(cloud.CreateSecurityGroupsInVpcs).toMatchObject({
      Action: 'ec2:CreateSecurityGroup',
      Resource: ec2Arn('vpc/*'),
    });
    expect(cloud.ChangeTaggedSecurityGroups).toMatchObject({
      Action: ['ec2:AuthorizeSecurityGroupIngress', 'ec2:DeleteSecurityGroup'],
      Resource: ec2Arn('security-group/*'),
      Condition: TAGGED,
    });
  });

  it('may terminate, stop, start, resize and snapshot only instances that carry Persona’s tag', () => {
    expect(cloud.ChangeTaggedInstances).toEqual(
      normalised({
        Sid: 'ChangeTaggedInstances',
        Effect: 'Allow',
        Action: [
          'ec2:TerminateInstances',
          'ec2:StopInstances',
          'ec2:StartInstances',
          'ec2:ModifyInstanceAttribute',
        ],
        Resource: ec2Arn('instance/*'),
        Condition: TAGGED,
      }),
    );
    expect(cloud.SnapshotTaggedInstances).toEqual(
      normalised({
        Sid: 'SnapshotTaggedInstances',
        Effect: 'Allow',
        Action: 'ec2:CreateSnapshots',
        Resource: [ec2Arn('instance/*'), ec2Arn('volume/*')],
        Condition: TAGGED,
      }),
    );
    expect(cloud.CreateTaggedSnapshots).toMatchObject({
      Action: 'ec2:CreateSnapshots',
      Resource: ec2Arn('snapshot/*', false),
      Condition: TAGGING,
    });
  });

  it('allows no change or delete anywhere on its role without the tag condition', () => {
    const statements = statementsOf(synthesized, cloneRole(synthesized));
    const changing = statements.filter((s) => actionsOf(s).some((a) => CHANGES.includes(a)));
    expect(changing.length).toBeGreaterThan(0);
    for (const s of changing) expect(s.Condition, JSON.stringify(s)).toEqual(TAGGED);
  });

  it('describes on * only the actions that have no resource-level permissions', () => {
    expect(cloud.DescribeWithoutResourceLevelPermissions).toEqual(
      normalised({
        Sid: 'DescribeWithoutResourceLevelPermissions',
        Effect: 'Allow',
        Action: [
          'ec2:DescribeInstances',
          'ec2:DescribeImages',
          'ec2:DescribeSecurityGroups',
          'ec2:DescribeSubnets',
          'ec2:DescribeVpcs',
          'ssm:DescribeInstanceInformation',
        ],
        Resource: '*',
      }),
    );
  });

  it('gives the clone task exactly the EC2 and Run Command actions the adaptor uses', () => {
    const actions = new Set(statementsOf(synthesized, cloneRole(synthesized)).flatMap(actionsOf));
    expect([...actions].filter((a) => a.startsWith('ec2:')).sort()).toEqual(EC2_ACTIONS);
    // Parameter Store credentials are the way to hosts, not the adaptor.
    expect([...actions].filter((a) => a.startsWith('ssm:') && a !== 'ssm:GetParameter').sort()).toEqual(
      SSM_ACTIONS,
    );
  });

  it('grants what the EC2 adaptor and the SSM transport call, and CreateTags for their tag specifications, nothing else', () => {
    const called = new Set([
      ...sdkActions('core/platform/ec2.ts', 'ec2'),
      ...sdkActions('core/platform/ec2.ts', 'ssm'),
      ...sdkActions('core/transport/ssm.ts', 'ssm'),
    ]);
    expect(called.size).toBeGreaterThan(10);
    expect([...called, 'ec2:CreateTags'].sort()).toEqual([...EC2_ACTIONS, ...SSM_ACTIONS].sort());
  });

  it('runs Run Command on launched instances through the document AWS-RunShellScript only', () => {
    const send = statementsOf(synthesized, cloneRole(synthesized)).filter((s) =>
      actionsOf(s).includes('ssm:SendCommand'),
    );
    expect(send).toHaveLength(1);
    expect(send[0]?.Resource).toEqual(
      expect.arrayContaining([
        { 'Fn::Join': ['', ['arn:', partition, ':ssm:', region, '::document/AWS-RunShellScript']] },
        ec2Arn('instance/*'),
      ]),
    );
    expect(JSON.stringify(send[0]?.Resource)).not.toContain('document/*');
  });

  it('passes no role to EC2 and reads no Azure secret when none is named', () => {
    const statements = statementsOf(synthesized, cloneRole(synthesized));
    expect(statements.filter((s) => actionsOf(s).some((a) => a.startsWith('iam:')))).toEqual([]);
    expect(Object.keys(cloud).sort()).not.toContain('ReadAzureCredentials');
    expect(cloneVariables(synthesized)).not.toHaveProperty(AZURE_CREDENTIALS_ENV);
  });

  it('grants no other function anything in EC2 beyond its VPC interfaces, and passes no role but the Scheduler role', () => {
    const { workflows, api, personaTriggers } = synthesized.stack.platform;
    const schedulerRole = { 'Fn::GetAtt': [logicalId(personaTriggers?.schedulerRole as IConstruct), 'Arn'] };
    const writers = ['create-persona', 'put-persona', 'delete-persona'] as const;
    const others = {
      'capture task': workflows.captureFunction,
      'fail-operation task': workflows.failOperationFunction,
      'agent authoriser': api.agentAuthorizerFunction as IConstruct & { role?: IConstruct },
      'persona-evaluate': personaTriggers?.evaluateFunction as IConstruct & { role?: IConstruct },
      ...api.functions,
    };
    for (const [name, fn] of Object.entries(others)) {
      const statements = statementsOf(synthesized, fn.role as IConstruct);
      expect(
        statements.flatMap(actionsOf).filter((a) => a.startsWith('ec2:')),
        name,
      ).toEqual([]);
      // The persona writers keep the persona's schedules, which Scheduler runs under its role.
      expect(
        statements.filter((s) => actionsOf(s).some((a) => a.startsWith('iam:'))),
        name,
      ).toEqual(
        (writers as readonly string[]).includes(name)
          ? [
              {
                Effect: 'Allow',
                Action: 'iam:PassRole',
                Resource: schedulerRole,
                Condition: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
              },
            ]
          : [],
      );
    }
  });

  it('passes cdk-nag AwsSolutions with every wildcard acknowledged', () => {
    expect(nagFindings(synthesized.app)).toEqual([]);
  });
});

/** The statements of the persona-switch task's cloud policy, by Sid. */
function resizeStatements({ template, stack }: Synthesized): Record<string, Statement> {
  const policy =
    template.findResources('AWS::IAM::Policy')[
      logicalId(stack.platform.workflows.personaSwitchCloudAccess.policy)
    ];
  const statements = (policy?.Properties.PolicyDocument.Statement ?? []) as Statement[];
  for (const s of statements) expect(s.Effect).toBe('Allow');
  return Object.fromEntries(statements.map((s) => [s.Sid, normalised(s) as Statement]));
}

const switchRole = ({ stack }: Synthesized) =>
  stack.platform.workflows.personaSwitchFunction.role as IConstruct;

describe('the persona-switch task in AWS', () => {
  let synthesized: Synthesized;

  beforeAll(() => {
    synthesized = synthesize();
  }, 120_000);

  it('may stop, start and change the type of instances carrying Persona’s tag, describe instances, and keep persona-* alarms, nothing else', () => {
    const alarms = {
      'Fn::Join': ['', ['arn:', partition, ':cloudwatch:', region, ':', account, ':alarm:persona-*']],
    };
    expect(resizeStatements(synthesized)).toEqual({
      ResizeTaggedInstances: normalised({
        Sid: 'ResizeTaggedInstances',
        Effect: 'Allow',
        Action: ['ec2:StopInstances', 'ec2:StartInstances', 'ec2:ModifyInstanceAttribute'],
        Resource: ec2Arn('instance/*'),
        Condition: TAGGED,
      }),
      DescribeInstancesWithoutResourceLevelPermissions: {
        Sid: 'DescribeInstancesWithoutResourceLevelPermissions',
        Effect: 'Allow',
        Action: 'ec2:DescribeInstances',
        Resource: '*',
      },
      KeepPersonaAlarms: normalised({
        Sid: 'KeepPersonaAlarms',
        Effect: 'Allow',
        Action: ['cloudwatch:PutMetricAlarm', 'cloudwatch:DeleteAlarms', 'cloudwatch:DescribeAlarms'],
        Resource: alarms,
      }),
    });
  });

  it('has on its whole role exactly the EC2 actions a resize calls, each change only with the tag, and passes no role', () => {
    const statements = statementsOf(synthesized, switchRole(synthesized));
    const ec2 = [...new Set(statements.flatMap(actionsOf).filter((a) => a.startsWith('ec2:')))].sort();
    // Its VPC interfaces are not there: this stack runs the task outside a VPC.
    expect(ec2).toEqual([
      'ec2:DescribeInstances',
      'ec2:ModifyInstanceAttribute',
      'ec2:StartInstances',
      'ec2:StopInstances',
    ]);
    for (const s of statements.filter((s) => actionsOf(s).some((a) => CHANGES.includes(a))))
      expect(s.Condition, JSON.stringify(s)).toEqual(TAGGED);
    expect(statements.flatMap(actionsOf).filter((a) => a.startsWith('iam:'))).toEqual([]);
    expect(
      statements
        .flatMap(actionsOf)
        .filter((a) => a.startsWith('cloudwatch:'))
        .sort(),
    ).toEqual(['cloudwatch:DeleteAlarms', 'cloudwatch:DescribeAlarms', 'cloudwatch:PutMetricAlarm']);
  });

  it('calls nothing in EC2 beyond what it is granted: the actions of the adaptor’s resize', () => {
    // What EC2.md says resize calls, read from the code: stop, wait, modify, start, wait.
    const text = readFileSync(new URL('../../core/platform/ec2.ts', import.meta.url), 'utf8');
    const resize = text.slice(text.indexOf('async resize('), text.indexOf('async terminate('));
    const called = [...resize.matchAll(/new (\w+)Command\(/g)].map((m) => `ec2:${m[1]}`);
    expect([...new Set([...called, 'ec2:DescribeInstances'])].sort()).toEqual([
      'ec2:DescribeInstances',
      'ec2:ModifyInstanceAttribute',
      'ec2:StartInstances',
      'ec2:StopInstances',
    ]);
  });
});

describe('the clone task in AWS and Azure, with the deployer’s subnets, instance roles and Azure secret', () => {
  const subnetIds = ['subnet-0a1b2c3d4e5f60718', 'subnet-0f1e2d3c4b5a60718'];
  const roleArns = [
    'arn:aws:iam::111122223333:role/persona-clone',
    'arn:aws:iam::111122223333:role/web/persona-clone-web',
  ];
  const secretArn = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:persona-azure-AbCdEf';
  const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/0b0e5c33-6c4e-4c5a-9a57-1d9f5c0f2f10';
  let synthesized: Synthesized;
  let cloud: Record<string, Statement>;

  beforeAll(() => {
    const given = new Stack(new App(), 'Given');
    synthesized = synthesize({
      cloneSubnets: subnetIds.map((id, i) => Subnet.fromSubnetId(given, `Subnet${i}`, id)),
      cloneInstanceRoles: roleArns.map((arn, i) => Role.fromRoleArn(given, `Role${i}`, arn)),
      azureCredentialsSecret: Secret.fromSecretAttributes(given, 'Azure', {
        secretCompleteArn: secretArn,
        encryptionKey: Key.fromKeyArn(given, 'AzureKey', keyArn),
      }),
    });
    cloud = cloudStatements(synthesized);
  }, 120_000);

  it('launches only into the named subnets', () => {
    const resources = cloud.LaunchInAllowedSubnets?.Resource as unknown[];
    const subnets = resources.filter((r) => JSON.stringify(r).includes(':subnet/'));
    expect(subnets).toEqual(subnetIds.map((id) => ec2Arn(`subnet/${id}`)));
  });

  it('may pass the named roles, to EC2 only, and no other role', () => {
    const passing = statementsOf(synthesized, cloneRole(synthesized)).filter((s) =>
      actionsOf(s).some((a) => a.startsWith('iam:')),
    );
    expect(passing).toEqual([
      {
        Sid: 'PassInstanceRolesToEc2',
        Effect: 'Allow',
        Action: 'iam:PassRole',
        Resource: roleArns,
        Condition: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
      },
    ]);
  });

  it('may only read the Azure secret, decrypt it only through Secrets Manager, and is told its ARN', () => {
    const onSecret = statementsOf(synthesized, cloneRole(synthesized)).filter((s) =>
      JSON.stringify(s.Resource).includes(secretArn),
    );
    expect(onSecret).toEqual([
      {
        Sid: 'ReadAzureCredentials',
        Effect: 'Allow',
        Action: 'secretsmanager:GetSecretValue',
        Resource: secretArn,
      },
    ]);
    expect(cloud.DecryptAzureCredentials).toEqual({
      Sid: 'DecryptAzureCredentials',
      Effect: 'Allow',
      Action: 'kms:Decrypt',
      Resource: keyArn,
      Condition: {
        StringEquals: {
          'kms:ViaService': { 'Fn::Join': ['', ['secretsmanager.', region, '.amazonaws.com']] },
        },
      },
    });
    expect(cloneVariables(synthesized)[AZURE_CREDENTIALS_ENV]).toBe(secretArn);
    // The credentials themselves stay in the secret: no @azure/identity variable is configured.
    expect(Object.keys(cloneVariables(synthesized)).filter((v) => v.startsWith('AZURE_'))).toEqual([]);
  });

  it('lets the persona-switch task read the Azure secret too, to resize Azure hosts, and tells it its ARN', () => {
    const { workflows } = synthesized.stack.platform;
    const onSecret = statementsOf(synthesized, switchRole(synthesized)).filter((s) =>
      JSON.stringify(s.Resource).includes(secretArn),
    );
    expect(onSecret).toEqual([
      {
        Sid: 'ReadAzureCredentials',
        Effect: 'Allow',
        Action: 'secretsmanager:GetSecretValue',
        Resource: secretArn,
      },
    ]);
    expect(resizeStatements(synthesized).DecryptAzureCredentials).toEqual(cloud.DecryptAzureCredentials);
    const fn =
      synthesized.template.findResources('AWS::Lambda::Function')[logicalId(workflows.personaSwitchFunction)];
    expect(fn?.Properties.Environment.Variables[AZURE_CREDENTIALS_ENV]).toBe(secretArn);
    // The deployer's subnets and instance roles are for launching, which a switch does not do.
    const statements = statementsOf(synthesized, switchRole(synthesized));
    expect(statements.flatMap(actionsOf).filter((a) => a.startsWith('iam:'))).toEqual([]);
    expect(JSON.stringify(statements)).not.toContain(':subnet/');
  });

  it('tells no other function of the secret and lets none read it', () => {
    const { workflows, api } = synthesized.stack.platform;
    const functions = synthesized.template.findResources('AWS::Lambda::Function');
    for (const fn of [
      workflows.captureFunction,
      workflows.failOperationFunction,
      ...Object.values(api.functions),
    ]) {
      expect(functions[logicalId(fn)]?.Properties.Environment?.Variables ?? {}).not.toHaveProperty(
        AZURE_CREDENTIALS_ENV,
      );
      expect(JSON.stringify(statementsOf(synthesized, fn.role as IConstruct))).not.toContain(secretArn);
    }
  });

  it('passes cdk-nag AwsSolutions with the deployer’s choices too, and CDK warns of nothing', () => {
    expect(nagFindings(synthesized.app)).toEqual([]);
    const annotations = Annotations.fromStack(synthesized.stack);
    expect(annotations.findError('*', Match.anyValue())).toEqual([]);
    expect(annotations.findWarning('*', Match.anyValue())).toEqual([]);
  });
});

describe('an Azure secret known by name only', () => {
  it('is read under its name with the random suffix Secrets Manager adds, and nothing else', () => {
    const given = new Stack(new App(), 'Given');
    const synthesized = synthesize({
      azureCredentialsSecret: Secret.fromSecretNameV2(given, 'Azure', 'persona-azure'),
    });
    const cloud = cloudStatements(synthesized);
    expect(JSON.stringify(cloud.ReadAzureCredentials?.Resource)).toMatch(
      /:secret:persona-azure-\?\?\?\?\?\?"/,
    );
    expect(cloud.DecryptAzureCredentials).toBeUndefined();
    expect(JSON.stringify(cloneVariables(synthesized)[AZURE_CREDENTIALS_ENV])).toContain(
      ':secret:persona-azure',
    );
  });
});

describe('cloneCloudContext', () => {
  const stackWith = (context: Record<string, unknown>) =>
    new Stack(
      new App({ context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [], ...context } }),
      'Deployed',
    );

  it('reads subnets, instance roles and the Azure secret from `cdk deploy -c`, and the clone task gets exactly them', () => {
    const app = new App({
      context: {
        ...CDK_CONTEXT,
        'aws:cdk:bundling-stacks': [],
        [CLONE_CLOUD_CONTEXT.subnets]: 'subnet-0a1b2c3d4e5f60718, subnet-0f1e2d3c,subnet-0f1e2d3c',
        [CLONE_CLOUD_CONTEXT.instanceRoles]: 'arn:aws:iam::111122223333:role/persona-clone',
        [CLONE_CLOUD_CONTEXT.azureSecret]: 'persona/azure',
      },
    });
    const stack = new PersonaStack(app, 'PersonaStack');
    const synthesized = { app, stack, template: Template.fromStack(stack) };
    const cloud = cloudStatements(synthesized);
    const text = JSON.stringify(cloud);
    expect(text).toContain(':subnet/subnet-0a1b2c3d4e5f60718');
    expect(text).toContain(':subnet/subnet-0f1e2d3c');
    expect(text).not.toContain(':subnet/*');
    expect(cloud.PassInstanceRolesToEc2?.Resource).toBe('arn:aws:iam::111122223333:role/persona-clone');
    expect(text).toContain(':secret:persona/azure-??????');
    expect(nagFindings(app)).toEqual([]);
  });

  it('gives nothing without context', () => {
    expect(cloneCloudContext(stackWith({}))).toEqual({});
  });

  it('refuses malformed entries, naming each, before anything is built', () => {
    const stack = stackWith({
      [CLONE_CLOUD_CONTEXT.subnets]: 'subnet-0a1b2c3d,sg-0a1b2c3d',
      [CLONE_CLOUD_CONTEXT.instanceRoles]: 'persona-clone',
      [CLONE_CLOUD_CONTEXT.azureSecret]: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:persona-azure',
    });
    let error: unknown;
    try {
      cloneCloudContext(stack);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).issues.map((i) => i.path)).toEqual([
      `${CLONE_CLOUD_CONTEXT.subnets}[1]`,
      `${CLONE_CLOUD_CONTEXT.instanceRoles}[0]`,
      CLONE_CLOUD_CONTEXT.azureSecret,
    ]);
    expect(stack.node.children).toEqual([]);
  });
});
