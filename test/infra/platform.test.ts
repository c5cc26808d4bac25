import { readFileSync } from 'node:fs';
import type { PolicyViolation } from 'aws-cdk-lib';
import { App, type CfnElement, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { Vpc } from 'aws-cdk-lib/aws-ec2';
import { Key } from 'aws-cdk-lib/aws-kms';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../core/api/routes.js';
import { WORKFLOWS } from '../../core/operation/workflows.js';
import {
  DATA_BUCKET,
  type KeyAttribute,
  PROFILES_TABLE,
  SSM_OUTPUT_BUCKET,
  SSM_OUTPUT_PREFIX,
  TABLES,
} from '../../core/storage/definitions.js';
import { workflowsAndFunctions } from '../../infra/monitoring.js';
import { PersonaStack, type PersonaStackProps } from '../../infra/stack.js';
import { CLONE_EVENTS } from '../../infra/workflows.js';

// The same feature flags `cdk synth` runs with, so that the tests see the deployed template.
const CDK_CONTEXT: Record<string, unknown> = JSON.parse(
  readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8'),
).context;

const HANDLERS = [...new Set(ROUTES.map((route) => route.handler))];
const TASKS = [...new Set(Object.values(WORKFLOWS).flatMap((w) => Object.values(w.tasks)))];

// The actions CDK's grant methods put in a policy, spelled out here so that a change in what a
// function may do, or in what CDK grants, shows up in review.
const TABLE_READ = [
  'dynamodb:BatchGetItem',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DescribeTable',
  'dynamodb:GetItem',
  'dynamodb:GetRecords',
  'dynamodb:GetShardIterator',
  'dynamodb:Query',
  'dynamodb:Scan',
];
const TABLE_WRITE = [
  'dynamodb:BatchWriteItem',
  'dynamodb:DeleteItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
];
const OBJECT_READ = ['s3:GetBucket*', 's3:GetObject*', 's3:List*'];
const OBJECT_PUT = [
  's3:Abort*',
  's3:PutObject',
  's3:PutObjectLegalHold',
  's3:PutObjectRetention',
  's3:PutObjectTagging',
  's3:PutObjectVersionTagging',
];
const KEY_READ = ['kms:Decrypt', 'kms:DescribeKey'];
const KEY_WRITE = [...KEY_READ, 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*'];

type Use = 'read' | 'put' | 'read-put' | 'read-write';
interface DataUse {
  readonly tables?: Readonly<Record<string, 'read' | 'read-write'>>;
  /** Prefixes of the data bucket; present (even empty) when the function is told the bucket's name. */
  readonly objects?: Readonly<Record<string, Exclude<Use, 'read-write'>>>;
  /** Key actions granted besides the ones the table and bucket grants imply. */
  readonly keyActions?: readonly string[];
}

const EVALUATION_USE: DataUse = {
  tables: {
    Personas: 'read',
    Hosts: 'read',
    HostPersonas: 'read-write',
    Metrics: 'read',
    Signals: 'read-write',
    Operations: 'read-write',
  },
  objects: { 'operations/': 'put' },
};

/** What each function works with, and so exactly what it may do with Persona's data. */
const DATA_USE: Readonly<Record<string, DataUse>> = {
  'create-profile': { tables: { Profiles: 'read-write' }, objects: { 'profiles/': 'put' } },
  'put-profile': { tables: { Profiles: 'read-write' }, objects: { 'profiles/': 'put' } },
  'get-profile': { tables: { Profiles: 'read' }, objects: { 'profiles/': 'read' } },
  'get-version': { tables: { Profiles: 'read' }, objects: { 'profiles/': 'read' } },
  'diff-profiles': { tables: { Profiles: 'read' }, objects: { 'profiles/': 'read' } },
  'list-profiles': { tables: { Profiles: 'read' }, objects: {} },
  'list-versions': { tables: { Profiles: 'read' }, objects: {} },
  'list-snapshots': { tables: { Snapshots: 'read' } },
  'get-snapshot': { tables: { Snapshots: 'read' } },
  'register-host': { tables: { Hosts: 'read-write' } },
  'list-hosts': { tables: { Hosts: 'read' } },
  'get-host': { tables: { Hosts: 'read' } },
  'get-operation': { tables: { Operations: 'read' } },
  'start-capture': { tables: { Hosts: 'read', Operations: 'read-write' } },
  'list-operations': { tables: { Operations: 'read' } },
  'start-clone': { tables: { Operations: 'read-write' }, objects: { 'operations/': 'put' } },
  'cancel-operation': { tables: { Operations: 'read-write' } },
  'get-operation-document': { tables: { Operations: 'read' }, objects: { 'operations/': 'read' } },
  'add-machine': { tables: { Hosts: 'read', Inventory: 'read-write' } },
  'list-machines': { tables: { Inventory: 'read' } },
  'get-openapi': {},
  // Personas are whole documents in their items; deleting one first asks which hosts have it.
  'create-persona': { tables: { Personas: 'read-write' } },
  'put-persona': { tables: { Personas: 'read-write' } },
  'get-persona': { tables: { Personas: 'read' } },
  'get-persona-version': { tables: { Personas: 'read' } },
  'list-personas': { tables: { Personas: 'read' } },
  'list-persona-versions': { tables: { Personas: 'read' } },
  'delete-persona': { tables: { Personas: 'read-write', HostPersonas: 'read' } },
  // Records the activation and its decision, and the switch's operation and request document.
  'activate-persona': {
    tables: { Personas: 'read', Hosts: 'read', HostPersonas: 'read-write', Operations: 'read-write' },
    objects: { 'operations/': 'put' },
  },
  'get-host-persona': { tables: { Hosts: 'read', HostPersonas: 'read' } },
  'get-host-recommendation': {
    tables: { Hosts: 'read', Profiles: 'read' },
    objects: { 'profiles/': 'read' },
  },
  'start-morph': {
    tables: { Hosts: 'read', Profiles: 'read', Operations: 'read-write' },
    objects: { 'profiles/': 'read', 'operations/': 'put' },
  },
  'get-host-forecast': { tables: { Hosts: 'read', Personas: 'read', Metrics: 'read' } },
  // Morph policies are items of the personas table, their documents in the items.
  'put-morph-policy': { tables: { Personas: 'read-write' } },
  'get-morph-policy': { tables: { Personas: 'read' } },
  'list-morph-policies': { tables: { Personas: 'read' } },
  'delete-morph-policy': { tables: { Personas: 'read-write' } },
  // The agent's side: its assignment, its reports, and the credentials installing it issues.
  'get-agent-assignment': { tables: { HostPersonas: 'read', Personas: 'read' } },
  'post-agent-report': { tables: { HostPersonas: 'read-write' } },
  // They reach the host as a capture does: the snapshot store's data key among that.
  'install-agent': { tables: { Hosts: 'read', Agents: 'read-write' }, keyActions: ['kms:GenerateDataKey'] },
  'revoke-agent': { tables: { Hosts: 'read', Agents: 'read-write' }, keyActions: ['kms:GenerateDataKey'] },
  'agent authoriser': { tables: { Agents: 'read' } },
  'capture task': {
    tables: {
      Hosts: 'read-write',
      Operations: 'read-write',
      Profiles: 'read-write',
      Snapshots: 'read-write',
      Locks: 'read-write',
    },
    objects: { 'profiles/': 'read-put', 'snapshots/': 'read-put' },
    // The snapshot store's master key is a data key under Persona's key.
    keyActions: ['kms:GenerateDataKey'],
  },
  'clone task': {
    tables: {
      Hosts: 'read-write',
      Operations: 'read-write',
      Profiles: 'read-write',
      Snapshots: 'read-write',
      Locks: 'read-write',
      Journal: 'read-write',
      Inventory: 'read-write',
    },
    objects: {
      'profiles/': 'read-put',
      'snapshots/': 'read-put',
      'operations/': 'read-put',
      'packages/': 'read-put',
    },
    // Baseline and Record capture the target: the same data key as the capture task.
    keyActions: ['kms:GenerateDataKey'],
  },
  'persona-switch task': {
    // What the clone task reaches, the persona it switches to, and the host's state and default.
    tables: {
      Hosts: 'read-write',
      Operations: 'read-write',
      Profiles: 'read-write',
      Snapshots: 'read-write',
      Locks: 'read-write',
      Journal: 'read-write',
      Inventory: 'read-write',
      Personas: 'read',
      HostPersonas: 'read-write',
    },
    objects: {
      'profiles/': 'read-put',
      'snapshots/': 'read-put',
      'operations/': 'read-put',
      'packages/': 'read-put',
    },
    // Baseline and Verify capture the host: the same data key as the capture task.
    keyActions: ['kms:GenerateDataKey'],
  },
  'morph task': {
    // What the clone task reaches; Record writes the host's new Profile version.
    tables: {
      Hosts: 'read-write',
      Operations: 'read-write',
      Profiles: 'read-write',
      Snapshots: 'read-write',
      Locks: 'read-write',
      Journal: 'read-write',
      Inventory: 'read-write',
    },
    objects: {
      'profiles/': 'read-put',
      'snapshots/': 'read-put',
      'operations/': 'read-put',
      'packages/': 'read-put',
    },
    keyActions: ['kms:GenerateDataKey'],
  },
  'fail-operation task': { tables: { Operations: 'read-write' } },
  // Evaluation (POST /signals, POST /metrics after storing, the triggers' function) reads what
  // criteria read, writes host state and signals, and records the switch it starts.
  'post-signal': EVALUATION_USE,
  'post-metrics': { ...EVALUATION_USE, tables: { ...EVALUATION_USE.tables, Metrics: 'read-write' } },
  'persona-evaluate': EVALUATION_USE,
  // Sampling reaches hosts as a capture does (the same data key), knows which hosts have a live
  // agent, keeps each host's last counters and stores the reports it makes; its round evaluates
  // morph policies too: each host's latest Profile for its recommendation.
  'persona-sample': {
    ...EVALUATION_USE,
    tables: { ...EVALUATION_USE.tables, Agents: 'read', Metrics: 'read-write', Profiles: 'read' },
    objects: { ...EVALUATION_USE.objects, 'profiles/': 'read' },
    keyActions: ['kms:GenerateDataKey'],
  },
  // Abandoned operations: read and end operations, nothing else (the sweeper's Step Functions
  // reads are in test/infra/monitoring.test.ts).
  'operation-failed': { tables: { Operations: 'read-write' } },
  'operation-sweeper': { tables: { Operations: 'read-write' } },
};

/** The functions that work with profiles and have no business with snapshots. */
const PROFILE_FUNCTIONS = Object.entries(DATA_USE)
  .filter(([, use]) => use.tables?.Profiles !== undefined && use.tables.Snapshots === undefined)
  .map(([name]) => name);

interface Synthesized {
  readonly app: App;
  readonly stack: PersonaStack;
  readonly template: Template;
}

/** `bundle: false` skips esbuild, for tests about configuration rather than code. */
function synthesize(props: PersonaStackProps = {}, bundle = true): Synthesized {
  const app = new App({
    context: { ...CDK_CONTEXT, ...(bundle ? {} : { 'aws:cdk:bundling-stacks': [] }) },
  });
  const stack = new PersonaStack(app, 'PersonaStack', props);
  return { app, stack, template: Template.fromStack(stack) };
}

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

/** Every function of the platform by the name DATA_USE knows it by. */
function functionsOf({ stack }: Synthesized): Record<string, IConstruct & { role?: IConstruct | undefined }> {
  return {
    ...stack.platform.api.functions,
    'capture task': stack.platform.workflows.captureFunction,
    'clone task': stack.platform.workflows.cloneFunction,
    'persona-switch task': stack.platform.workflows.personaSwitchFunction,
    'morph task': stack.platform.morph.morphFunction,
    'fail-operation task': stack.platform.workflows.failOperationFunction,
    ...(stack.platform.api.agentAuthorizerFunction
      ? { 'agent authoriser': stack.platform.api.agentAuthorizerFunction }
      : {}),
    ...(stack.platform.personaTriggers
      ? {
          'persona-evaluate': stack.platform.personaTriggers.evaluateFunction,
          'persona-sample': stack.platform.personaTriggers.sampleFunction,
        }
      : {}),
    'operation-failed': stack.platform.abandonedOperations.failFunction,
    'operation-sweeper': stack.platform.abandonedOperations.sweeperFunction,
  };
}

/** A resource as `<LogicalId>` plus what follows it (`<Data>/profiles/*`), or as it is written. */
function renderResource(resource: unknown): string {
  const r = resource as Record<string, unknown>;
  if (typeof resource === 'string') return resource;
  const att = r['Fn::GetAtt'] as [string, string] | undefined;
  if (att) return `<${att[0]}>`;
  const join = r['Fn::Join'] as [string, unknown[]] | undefined;
  if (join && join[0] === '') return join[1].map(renderResource).join('');
  if (typeof r.Ref === 'string') return `<${r.Ref}>`;
  return JSON.stringify(resource);
}

/** Every (action, resource) pair the policies attached to a function's role allow. */
function grantsOf({ template }: Synthesized, fn: { role?: IConstruct | undefined }): Set<string> {
  if (!fn.role) throw new Error('the function has no role');
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: Match.arrayWith([{ Ref: logicalId(fn.role) }]) },
  });
  const pairs = new Set<string>();
  for (const policy of Object.values(policies)) {
    for (const s of policy.Properties.PolicyDocument.Statement) {
      expect(s.Effect).toBe('Allow');
      for (const action of [s.Action].flat()) {
        for (const resource of [s.Resource].flat()) pairs.add(`${action} ${renderResource(resource)}`);
      }
    }
  }
  return pairs;
}

function nagViolations(app: App): PolicyViolation[] {
  return new AwsSolutionsChecks(app).validateScope(app).violations;
}

function describeViolations(violations: readonly PolicyViolation[]): string[] {
  return violations.map(
    (v) => `${v.severity} ${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
  );
}

function keySchema(partitionKey: KeyAttribute, sortKey?: KeyAttribute) {
  return [
    { AttributeName: partitionKey.name, KeyType: 'HASH' },
    ...(sortKey ? [{ AttributeName: sortKey.name, KeyType: 'RANGE' }] : []),
  ];
}

describe('PersonaStack', () => {
  let synthesized: Synthesized;
  let template: Template;

  beforeAll(() => {
    synthesized = synthesize();
    template = synthesized.template;
    // esbuild bundles every function here (over forty), on a machine that may be busy with
    // other test files: a bound on a hang, not a time the synthesis is expected to take.
  }, 600_000);

  describe('storage', () => {
    it('builds the profiles table from PROFILES_TABLE: key schema, attribute types and the byEntity index', () => {
      const attributes = [
        PROFILES_TABLE.partitionKey,
        PROFILES_TABLE.sortKey,
        ...PROFILES_TABLE.globalSecondaryIndexes.flatMap((index) => [index.partitionKey, index.sortKey]),
      ];
      template.hasResourceProperties('AWS::DynamoDB::Table', {
        KeySchema: keySchema(PROFILES_TABLE.partitionKey, PROFILES_TABLE.sortKey),
        AttributeDefinitions: Match.arrayWith(
          [...new Map(attributes.map((a) => [a.name, a])).values()].map((a) => ({
            AttributeName: a.name,
            AttributeType: a.type,
          })),
        ),
        GlobalSecondaryIndexes: PROFILES_TABLE.globalSecondaryIndexes.map((index) => ({
          IndexName: index.indexName,
          KeySchema: keySchema(index.partitionKey, index.sortKey),
          Projection: { ProjectionType: index.projection },
        })),
        BillingMode: 'PAY_PER_REQUEST',
      });
    });

    it('keeps the profiles table recoverable: point-in-time recovery, deletion protection, retained on stack deletion', () => {
      template.hasResource('AWS::DynamoDB::Table', {
        Properties: Match.objectLike({
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          DeletionProtectionEnabled: true,
        }),
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
      });
    });

    it('encrypts the table with the customer-managed key, which rotates', () => {
      const key = logicalId(synthesized.stack.platform.storage.key);
      template.hasResourceProperties('AWS::DynamoDB::Table', {
        SSESpecification: {
          SSEEnabled: true,
          SSEType: 'KMS',
          KMSMasterKeyId: { 'Fn::GetAtt': [key, 'Arn'] },
        },
      });
      template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    });

    it('encrypts the data bucket with the key, blocks public access, keeps versions and logs access', () => {
      const storage = synthesized.stack.platform.storage;
      const bucket = template.findResources('AWS::S3::Bucket')[logicalId(storage.bucket)];
      expect(bucket?.Properties).toMatchObject({
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [
            {
              BucketKeyEnabled: true,
              ServerSideEncryptionByDefault: {
                SSEAlgorithm: 'aws:kms',
                KMSMasterKeyID: { 'Fn::GetAtt': [logicalId(storage.key), 'Arn'] },
              },
            },
          ],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        VersioningConfiguration: { Status: 'Enabled' },
        LoggingConfiguration: { DestinationBucketName: { Ref: logicalId(storage.accessLogsBucket) } },
      });
    });

    it('denies every request to either bucket that does not use TLS', () => {
      const storage = synthesized.stack.platform.storage;
      for (const bucket of [storage.bucket, storage.accessLogsBucket]) {
        template.hasResourceProperties('AWS::S3::BucketPolicy', {
          Bucket: { Ref: logicalId(bucket) },
          PolicyDocument: {
            Statement: Match.arrayWith([
              Match.objectLike({
                Effect: 'Deny',
                Action: 's3:*',
                Condition: { Bool: { 'aws:SecureTransport': 'false' } },
              }),
            ]),
          },
        });
      }
    });

    it('encrypts, versions and locks down the access-log bucket too', () => {
      const logs =
        template.findResources('AWS::S3::Bucket')[
          logicalId(synthesized.stack.platform.storage.accessLogsBucket)
        ];
      expect(logs?.Properties).toMatchObject({
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, RestrictPublicBuckets: true },
        VersioningConfiguration: { Status: 'Enabled' },
      });
    });
  });

  describe('functions', () => {
    it('deploys one arm64 Node.js 22 function per handler, traced, with ESM bundles and source maps', () => {
      // One per API handler, and one per task the workflows name (fail-operation serves all
      // three). And the agent routes' authoriser, the persona triggers' evaluate and sample
      // functions, and the two that fail abandoned operations.
      template.resourceCountIs('AWS::Lambda::Function', HANDLERS.length + TASKS.length + 5);
      for (const handler of HANDLERS) {
        template.hasResourceProperties('AWS::Lambda::Function', {
          Description: Match.stringLikeRegexp(`${handler}$`),
          Runtime: 'nodejs22.x',
          Architectures: ['arm64'],
          Handler: 'index.main',
          TracingConfig: { Mode: 'Active' },
          Environment: {
            Variables: Match.objectLike({
              POWERTOOLS_SERVICE_NAME: 'persona',
              NODE_OPTIONS: '--enable-source-maps',
            }),
          },
        });
      }
    });

    it('tells each function the names of the tables and the bucket it uses, and of no other', () => {
      const storage = synthesized.stack.platform.storage;
      const functions = template.findResources('AWS::Lambda::Function');
      for (const [name, fn] of Object.entries(functionsOf(synthesized))) {
        const use = DATA_USE[name];
        expect(use, `${name} has no entry in DATA_USE`).toBeDefined();
        const variables = functions[logicalId(fn)]?.Properties.Environment.Variables ?? {};
        for (const definition of TABLES) {
          if (use?.tables?.[definition.id] === undefined)
            expect(variables, name).not.toHaveProperty(definition.env);
          else
            expect(variables[definition.env], name).toEqual({
              Ref: logicalId(storage.tables[definition.id] as IConstruct),
            });
        }
        if (use?.objects === undefined) expect(variables, name).not.toHaveProperty(DATA_BUCKET.env);
        else expect(variables[DATA_BUCKET.env], name).toEqual({ Ref: logicalId(storage.bucket) });
      }
    });

    it('allows each function exactly the data actions it needs, on exactly its tables, prefixes and key', () => {
      const storage = synthesized.stack.platform.storage;
      const bucket = `<${logicalId(storage.bucket)}>`;
      const key = `<${logicalId(storage.key)}>`;
      const dataResources = [bucket, key, ...Object.values(storage.tables).map((t) => `<${logicalId(t)}>`)];
      for (const [name, fn] of Object.entries(functionsOf(synthesized))) {
        const use = DATA_USE[name] ?? {};
        const expected = new Set<string>();
        const add = (actions: readonly string[], resources: readonly string[]) => {
          for (const a of actions) for (const r of resources) expected.add(`${a} ${r}`);
        };
        let writes = false;
        for (const [id, access] of Object.entries(use.tables ?? {})) {
          const definition = TABLES.find((t) => t.id === id);
          const table = `<${logicalId(storage.tables[id] as IConstruct)}>`;
          const resources = [
            table,
            ...(definition?.globalSecondaryIndexes.length ? [`${table}/index/*`] : []),
          ];
          add(access === 'read' ? TABLE_READ : [...TABLE_READ, ...TABLE_WRITE], resources);
          writes ||= access === 'read-write';
        }
        for (const [prefix, access] of Object.entries(use.objects ?? {})) {
          if (access !== 'put') add(OBJECT_READ, [bucket, `${bucket}/${prefix}*`]);
          if (access !== 'read') add(OBJECT_PUT, [`${bucket}/${prefix}*`]);
          writes ||= access !== 'read';
        }
        if (writes) add(KEY_WRITE, [key]);
        else if (Object.keys(use.tables ?? {}).length > 0 || Object.keys(use.objects ?? {}).length > 0)
          add(KEY_READ, [key]);
        add(use.keyActions ?? [], [key]);

        const onData = [...grantsOf(synthesized, fn)].filter((pair) =>
          dataResources.some((r) => pair.split(' ')[1]?.startsWith(r)),
        );
        expect(onData.sort(), name).toEqual([...expected].sort());
      }
    });

    it('lets no function delete an object of the data bucket: the profile functions cannot touch snapshots/*', () => {
      const bucket = `<${logicalId(synthesized.stack.platform.storage.bucket)}>`;
      expect(PROFILE_FUNCTIONS).toEqual(
        expect.arrayContaining(['create-profile', 'put-profile', 'get-profile', 'list-profiles']),
      );
      for (const [name, fn] of Object.entries(functionsOf(synthesized))) {
        const pairs = [...grantsOf(synthesized, fn)];
        // A wildcard such as s3:* or s3:Delete* would allow it as surely as s3:DeleteObject.
        const deletes = pairs.filter((p) => /^s3:(\*|Delete)/.test(p) && p.split(' ')[1]?.startsWith(bucket));
        expect(deletes, name).toEqual([]);
        if (PROFILE_FUNCTIONS.includes(name)) {
          expect(
            pairs.filter((p) => p.includes(`${bucket}/snapshots/`) || p.endsWith(`${bucket}/*`)),
            name,
          ).toEqual([]);
        }
      }
    });

    it('uses no AWS-managed policy for function roles', () => {
      for (const [name, fn] of Object.entries(functionsOf(synthesized))) {
        const resource = template.findResources('AWS::IAM::Role')[logicalId(fn.role as IConstruct)];
        expect(resource?.Properties.ManagedPolicyArns, name).toBeUndefined();
      }
    });

    it('writes each function’s logs to its own log group with the configured retention', () => {
      for (const handler of HANDLERS) {
        const fn =
          template.findResources('AWS::Lambda::Function')[
            logicalId(synthesized.stack.platform.api.functions[handler])
          ];
        const logGroup = fn?.Properties.LoggingConfig.LogGroup.Ref;
        expect(template.findResources('AWS::Logs::LogGroup')[logGroup]?.Properties, handler).toMatchObject({
          RetentionInDays: 30,
        });
      }
      for (const group of Object.values(template.findResources('AWS::Logs::LogGroup'))) {
        expect(group.Properties.RetentionInDays).toBe(30);
      }
    });
  });

  describe('API', () => {
    it('serves every route with a method that requires IAM (SigV4) authorization, but the agent routes', () => {
      template.resourceCountIs('AWS::ApiGateway::Method', ROUTES.length);
      const agentRoutes = new Set(
        ROUTES.filter((r) => 'auth' in r && r.auth === 'agent').map((r) => r.handler),
      );
      for (const method of Object.values(template.findResources('AWS::ApiGateway::Method'))) {
        expect(method.Properties.AuthorizationType).toBe(
          agentRoutes.has(method.Properties.OperationName) ? 'CUSTOM' : 'AWS_IAM',
        );
      }
      for (const route of ROUTES) {
        template.hasResourceProperties('AWS::ApiGateway::Method', {
          HttpMethod: route.method,
          OperationName: route.handler,
          Integration: {
            Type: 'AWS_PROXY',
            Uri: {
              'Fn::Join': [
                '',
                Match.arrayWith([
                  {
                    'Fn::GetAtt': [logicalId(synthesized.stack.platform.api.functions[route.handler]), 'Arn'],
                  },
                ]),
              ],
            },
          },
          RequestValidatorId: Match.anyValue(),
        });
      }
    });

    it('checks agent routes with the agent authoriser: the bearer header, no cached answers, read of Agents only', () => {
      const authorizers = template.findResources('AWS::ApiGateway::Authorizer');
      expect(Object.values(authorizers)).toHaveLength(1);
      const [authorizerId, authorizer] = Object.entries(authorizers)[0] ?? [];
      expect(authorizer?.Properties).toMatchObject({
        Type: 'REQUEST',
        IdentitySource: 'method.request.header.Authorization',
        AuthorizerResultTtlInSeconds: 0,
      });
      for (const route of ROUTES.filter((r) => 'auth' in r && r.auth === 'agent')) {
        template.hasResourceProperties('AWS::ApiGateway::Method', {
          OperationName: route.handler,
          AuthorizationType: 'CUSTOM',
          AuthorizerId: { Ref: authorizerId },
        });
      }
    });

    it('builds one API Gateway resource per distinct path segment, {param} segments included', () => {
      const prefixes = new Set(
        ROUTES.flatMap((route) => {
          const segments = route.path.split('/').filter(Boolean);
          return segments.map((_, i) => segments.slice(0, i + 1).join('/'));
        }),
      );
      template.resourceCountIs('AWS::ApiGateway::Resource', prefixes.size);
      template.hasResourceProperties('AWS::ApiGateway::Resource', { PathPart: '{name}' });
    });

    it('validates requests and logs access, execution and traces on the v1 stage, throttled', () => {
      template.hasResourceProperties('AWS::ApiGateway::RequestValidator', {
        ValidateRequestBody: true,
        ValidateRequestParameters: true,
      });
      template.hasResourceProperties('AWS::ApiGateway::Stage', {
        StageName: 'v1',
        TracingEnabled: true,
        AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
        MethodSettings: [
          Match.objectLike({
            HttpMethod: '*',
            ResourcePath: '/*',
            LoggingLevel: 'INFO',
            MetricsEnabled: true,
            DataTraceEnabled: false,
            ThrottlingRateLimit: 50,
            ThrottlingBurstLimit: 100,
          }),
        ],
      });
    });

    it('outputs the API URL, the table name and the bucket name', () => {
      template.hasOutput('ApiUrl', {});
      template.hasOutput(`${PROFILES_TABLE.id}TableName`, {});
      template.hasOutput('DataBucketName', {});
    });
  });

  describe('workflows', () => {
    /** The task functions by the names WORKFLOWS gives them. */
    const taskFunctions = (): Record<string, IConstruct> => {
      const { workflows } = synthesized.stack.platform;
      return {
        capture: workflows.captureFunction,
        clone: workflows.cloneFunction,
        'persona-switch': workflows.personaSwitchFunction,
        morph: synthesized.stack.platform.morph.morphFunction,
        'fail-operation': workflows.failOperationFunction,
      };
    };
    const machines = () => {
      const { workflows } = synthesized.stack.platform;
      return {
        capture: logicalId(workflows.capture),
        clone: logicalId(workflows.clone),
        'persona-switch': logicalId(workflows.personaSwitch),
        morph: logicalId(synthesized.stack.platform.morph.stateMachine),
      } as const;
    };

    it('deploys each workflow from its ASL file as a Standard state machine, traced and logged, every placeholder bound to its task', () => {
      const resources = template.findResources('AWS::StepFunctions::StateMachine');
      expect(Object.keys(resources).sort()).toEqual(Object.values(machines()).sort());
      for (const [name, spec] of Object.entries(WORKFLOWS) as [
        keyof typeof WORKFLOWS,
        (typeof WORKFLOWS)[keyof typeof WORKFLOWS],
      ][]) {
        const machine = resources[machines()[name]];
        // The file itself is the deployed definition (an asset), and every placeholder in it is filled.
        expect(machine?.Properties.DefinitionS3Location, name).toBeDefined();
        expect(machine?.Properties, name).toMatchObject({
          StateMachineType: 'STANDARD',
          TracingConfiguration: { Enabled: true },
          LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: false },
        });
        const asl = readFileSync(spec.definition, 'utf8');
        const placeholders = [...new Set([...asl.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1] as string))];
        expect(placeholders.sort(), name).toEqual(Object.keys(spec.tasks).sort());
        const bound = Object.fromEntries(
          Object.entries(spec.tasks).map(([placeholder, task]) => [
            placeholder,
            { 'Fn::GetAtt': [logicalId(taskFunctions()[task] as IConstruct), 'Arn'] },
          ]),
        );
        expect(machine?.Properties.DefinitionSubstitutions, name).toEqual(bound);
      }
    });

    it('binds the Clone state machine to the clone task and the fail-operation task', () => {
      const { workflows } = synthesized.stack.platform;
      const clone = template.findResources('AWS::StepFunctions::StateMachine')[machines().clone];
      expect(clone?.Properties.DefinitionSubstitutions).toEqual({
        CloneFunctionArn: { 'Fn::GetAtt': [logicalId(workflows.cloneFunction), 'Arn'] },
        FailOperationFunctionArn: { 'Fn::GetAtt': [logicalId(workflows.failOperationFunction), 'Arn'] },
      });
      // Each state machine may invoke its own tasks only: the capture workflow cannot run a clone step.
      for (const [machine, tasks] of [
        [workflows.clone, [workflows.cloneFunction, workflows.failOperationFunction]],
        [workflows.capture, [workflows.captureFunction, workflows.failOperationFunction]],
        [workflows.personaSwitch, [workflows.personaSwitchFunction, workflows.failOperationFunction]],
        [
          synthesized.stack.platform.morph.stateMachine,
          [synthesized.stack.platform.morph.morphFunction, workflows.failOperationFunction],
        ],
      ] as const) {
        const invokes = [...grantsOf(synthesized, machine)].filter((p) => p.startsWith('lambda:'));
        expect(invokes.sort()).toEqual(
          tasks
            .flatMap((f) => [
              `lambda:InvokeFunction <${logicalId(f)}>`,
              `lambda:InvokeFunction <${logicalId(f)}>:*`,
            ])
            .sort(),
        );
      }
    });

    it('lets start-capture start only captures and start-clone only clones, and no other function start either', () => {
      const functions = template.findResources('AWS::Lambda::Function');
      const { capture, clone, 'persona-switch': personaSwitch, morph } = machines();
      const expected: Record<string, string[]> = {
        'start-capture': [`states:StartExecution <${capture}>`],
        'start-clone': [`states:StartExecution <${clone}>`],
        'start-morph': [`states:StartExecution <${morph}>`],
        // Evaluation starts the switches it decides.
        'post-signal': [`states:StartExecution <${personaSwitch}>`],
        'post-metrics': [`states:StartExecution <${personaSwitch}>`],
        'persona-evaluate': [`states:StartExecution <${personaSwitch}>`],
        // ... and the morphs its morph policies decide.
        // (CDK's minimised policies list resources in order.)
        'persona-sample': [`states:StartExecution <${morph}>`, `states:StartExecution <${personaSwitch}>`],
        // A manual activation starts the switch that applies it.
        'activate-persona': [`states:StartExecution <${personaSwitch}>`],
        // The sweeper looks an operation's execution up in each workflow, and starts none.
        // (CDK's minimised policies list resources in order.)
        'operation-sweeper': workflowsAndFunctions(synthesized.stack.platform)
          .stateMachines.map(
            (m) =>
              `states:DescribeExecution arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<${logicalId(m)}>:*`,
          )
          .sort(),
      };
      for (const [name, fn] of Object.entries(functionsOf(synthesized))) {
        const states = [...grantsOf(synthesized, fn)].filter((p) => p.startsWith('states:'));
        expect(states, name).toEqual(expected[name] ?? []);
        const variables = functions[logicalId(fn)]?.Properties.Environment.Variables ?? {};
        if (name === 'start-capture') expect(variables.CAPTURE_STATE_MACHINE_ARN).toEqual({ Ref: capture });
        else expect(variables, name).not.toHaveProperty('CAPTURE_STATE_MACHINE_ARN');
        if (name === 'start-clone') expect(variables.CLONE_STATE_MACHINE_ARN).toEqual({ Ref: clone });
        else expect(variables, name).not.toHaveProperty('CLONE_STATE_MACHINE_ARN');
        // The variable functions/shared/workflows.ts reads, given to exactly the switch's starters.
        if (expected[name]?.some((g) => g.endsWith(`<${personaSwitch}>`)))
          expect(variables.PERSONA_SWITCH_STATE_MACHINE_ARN, name).toEqual({ Ref: personaSwitch });
        else expect(variables, name).not.toHaveProperty('PERSONA_SWITCH_STATE_MACHINE_ARN');
        if (expected[name]?.some((g) => g.endsWith(`<${morph}>`)))
          expect(variables.MORPH_STATE_MACHINE_ARN, name).toEqual({ Ref: morph });
        else expect(variables, name).not.toHaveProperty('MORPH_STATE_MACHINE_ARN');
      }
    });

    it('runs capture in 14 minutes and each clone step in Lambda’s 15, with 1 GiB and the snapshot store’s key', () => {
      const { workflows } = synthesized.stack.platform;
      const functions = template.findResources('AWS::Lambda::Function');
      const key = { 'Fn::GetAtt': [logicalId(synthesized.stack.platform.storage.key), 'Arn'] };
      expect(functions[logicalId(workflows.captureFunction)]?.Properties).toMatchObject({
        Description: 'Persona workflow task: capture a host',
        Timeout: 840,
        MemorySize: 1024,
        Environment: { Variables: expect.objectContaining({ PERSONA_KEY_ID: key }) },
      });
      expect(functions[logicalId(workflows.cloneFunction)]?.Properties).toMatchObject({
        Timeout: 900,
        MemorySize: 1024,
        Environment: { Variables: expect.objectContaining({ PERSONA_KEY_ID: key }) },
      });
    });

    it('lets the clone task write the journal, the inventory, operations/ and packages/, and delete nothing in the data bucket', () => {
      const { storage, workflows } = synthesized.stack.platform;
      const pairs = [...grantsOf(synthesized, workflows.cloneFunction)];
      const bucket = `<${logicalId(storage.bucket)}>`;
      for (const table of ['Journal', 'Inventory']) {
        const arn = `<${logicalId(storage.tables[table] as IConstruct)}>`;
        for (const action of [
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:GetItem',
          'dynamodb:Query',
        ])
          expect(pairs, table).toContain(`${action} ${arn}`);
      }
      for (const prefix of ['operations/', 'packages/']) {
        expect(pairs).toContain(`s3:PutObject ${bucket}/${prefix}*`);
        expect(pairs).toContain(`s3:GetObject* ${bucket}/${prefix}*`);
      }
      expect(pairs.filter((p) => /^s3:(\*|Delete)/.test(p) && p.split(' ')[1]?.startsWith(bucket))).toEqual(
        [],
      );
      // Nothing over the whole bucket: only the prefixes it uses.
      expect(pairs.filter((p) => p.endsWith(`${bucket}/*`))).toEqual([]);
    });

    it('gives the clone task the capture task’s way to hosts (credentials, SSM, Run Command output), one grant each', () => {
      const { storage, workflows } = synthesized.stack.platform;
      const data = [
        `<${logicalId(storage.bucket)}>`,
        `<${logicalId(storage.key)}>`,
        ...Object.values(storage.tables).map((t) => `<${logicalId(t)}>`),
      ];
      // What a function may do besides its data and its own log group.
      const reach = (fn: IConstruct & { role?: IConstruct | undefined }) =>
        [...grantsOf(synthesized, fn)]
          .filter((p) => !data.some((r) => p.split(' ')[1]?.startsWith(r)))
          .filter((p) => !p.startsWith('logs:'))
          .sort();
      const capture = reach(workflows.captureFunction);
      const clone = reach(workflows.cloneFunction);
      expect(capture).toEqual(
        expect.arrayContaining([
          'secretsmanager:GetSecretValue arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:persona/*',
          'ssm:GetParameter arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/persona/*',
          'ssm:GetCommandInvocation *',
        ]),
      );
      // Besides, the clone task announces outcomes and provisions in EC2 (test/infra/cloud.test.ts).
      expect(
        clone.filter((p) => !/^(events|ec2|iam):/.test(p) && p !== 'ssm:DescribeInstanceInformation *'),
      ).toEqual(capture);
    });
  });

  describe('notifications', () => {
    const ids = () => {
      const { storage, workflows } = synthesized.stack.platform;
      return {
        topic: logicalId(workflows.notificationTopic),
        rule: logicalId(workflows.notificationRule),
        key: logicalId(workflows.notificationTopic.masterKey as IConstruct),
        dataKey: logicalId(storage.key),
      };
    };
    const defaultBus = 'arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:event-bus/default';

    it('lets the clone task put events on the account’s default bus, tells it that bus, and lets no other function put events', async () => {
      const { workflows } = synthesized.stack.platform;
      // The variable and source the clone task itself uses (functions/shared/clone.ts).
      const { EVENT_BUS } = await import('../../functions/shared/clone.js');
      expect({ env: CLONE_EVENTS.env, source: CLONE_EVENTS.source }).toEqual(EVENT_BUS);
      const clone = template.findResources('AWS::Lambda::Function')[logicalId(workflows.cloneFunction)];
      expect(renderResource(clone?.Properties.Environment.Variables[EVENT_BUS.env])).toBe(defaultBus);
      for (const [name, fn] of Object.entries(functionsOf(synthesized))) {
        const put = [...grantsOf(synthesized, fn)].filter((p) => p.startsWith('events:'));
        expect(put, name).toEqual(name === 'clone task' ? [`events:PutEvents ${defaultBus}`] : []);
      }
    });

    it('forwards the default bus’s persona Clone events, and no others, to the topic', () => {
      const { topic, rule } = ids();
      const rules = template.findResources('AWS::Events::Rule');
      // Besides the persona triggers' rules on alarm state changes and the sampling schedule
      // (test/infra/personas.test.ts), and the abandoned operations' rule on stopped executions
      // and sweeping schedule (test/infra/monitoring.test.ts).
      const triggers = synthesized.stack.platform.personaTriggers;
      const abandoned = synthesized.stack.platform.abandonedOperations;
      const own = [
        triggers?.alarmRule,
        triggers?.samplingRule,
        abandoned.stoppedExecutionsRule,
        abandoned.sweeperRule,
      ].map((r) => logicalId(r as IConstruct));
      expect(Object.keys(rules).filter((id) => !own.includes(id))).toEqual([rule]);
      expect(rules[rule]?.Properties).toMatchObject({
        EventBusName: 'default',
        State: 'ENABLED',
        EventPattern: { source: ['persona'], 'detail-type': [{ prefix: 'Clone' }] },
        Targets: [{ Arn: { Ref: topic }, Id: expect.any(String) }],
      });
      expect(Object.keys(rules[rule]?.Properties.EventPattern).sort()).toEqual(['detail-type', 'source']);
    });

    it('lets EventBridge publish to the topic for that rule only, CloudWatch for this account’s alarms, and nobody without TLS', () => {
      const { topic, rule } = ids();
      const policies = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
      expect(policies).toHaveLength(1);
      expect(policies[0]?.Properties.Topics).toEqual([{ Ref: topic }]);
      const statements = policies[0]?.Properties.PolicyDocument.Statement;
      expect(statements).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            Effect: 'Deny',
            Principal: '*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      );
      const allows = statements.filter((s: { Effect: string }) => s.Effect === 'Allow');
      expect(allows).toEqual([
        expect.objectContaining({
          Principal: { Service: 'events.amazonaws.com' },
          Action: 'sns:Publish',
          Resource: { Ref: topic },
          Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [rule, 'Arn'] } } },
        }),
        // The alarms notify the same topic (test/infra/monitoring.test.ts).
        expect.objectContaining({
          Principal: { Service: 'cloudwatch.amazonaws.com' },
          Action: 'sns:Publish',
          Resource: { Ref: topic },
        }),
      ]);
    });

    it('encrypts the topic under a rotating key of its own, which EventBridge may use for this account’s topics only', () => {
      const { topic, key, dataKey } = ids();
      expect(key).not.toBe(dataKey);
      expect(template.findResources('AWS::SNS::Topic')[topic]?.Properties.KmsMasterKeyId).toEqual({
        'Fn::GetAtt': [key, 'Arn'],
      });
      const keys = template.findResources('AWS::KMS::Key');
      expect(keys[key]?.Properties.EnableKeyRotation).toBe(true);
      const forEvents = keys[key]?.Properties.KeyPolicy.Statement.filter(
        (s: { Principal: { Service?: string } }) => s.Principal.Service === 'events.amazonaws.com',
      );
      expect(forEvents).toEqual([
        {
          Effect: 'Allow',
          Principal: { Service: 'events.amazonaws.com' },
          Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
          Resource: '*',
          Condition: {
            StringLike: {
              'kms:EncryptionContext:aws:sns:topicArn': {
                'Fn::Join': [
                  '',
                  [
                    'arn:',
                    { Ref: 'AWS::Partition' },
                    ':sns:',
                    { Ref: 'AWS::Region' },
                    ':',
                    { Ref: 'AWS::AccountId' },
                    ':*',
                  ],
                ],
              },
            },
          },
        },
      ]);
      // The data key is not opened to EventBridge.
      expect(JSON.stringify(keys[dataKey]?.Properties.KeyPolicy)).not.toContain('events.amazonaws.com');
    });

    it('outputs the topic’s ARN for subscribers', () => {
      template.hasOutput('NotificationTopicArn', { Value: { Ref: ids().topic } });
    });
  });

  describe('SSM output bucket', () => {
    const ids = () => {
      const { workflows } = synthesized.stack.platform;
      const bucket = logicalId(workflows.ssmOutputBucket);
      // The functions that reach hosts, and so may run commands over SSM: the tasks, and the
      // routes that install and remove a host's agent.
      const { functions: api } = synthesized.stack.platform.api;
      const reaching = [
        workflows.captureFunction,
        workflows.cloneFunction,
        workflows.personaSwitchFunction,
        synthesized.stack.platform.morph.morphFunction,
        api['install-agent'],
        api['revoke-agent'],
        synthesized.stack.platform.personaTriggers?.sampleFunction as IConstruct & { role?: IConstruct },
      ];
      return {
        bucket,
        functions: reaching.map((f) => logicalId(f)),
        roles: reaching.map((f) => logicalId(f.role as IConstruct)),
        outputObjects: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, `/${SSM_OUTPUT_PREFIX}/*`]] },
      };
    };

    it('tells the functions that reach hosts the bucket and lets them read and delete under the SSM prefix only', () => {
      const { bucket, functions: reaching, roles, outputObjects } = ids();
      const functions = template.findResources('AWS::Lambda::Function');
      const policies = Object.values(template.findResources('AWS::IAM::Policy'));
      const attachedTo = (p: { Properties?: { Roles?: unknown } }) =>
        roles.find((role) => JSON.stringify(p.Properties?.Roles).includes(role));
      for (const [i, fn] of reaching.entries()) {
        expect(functions[fn]?.Properties.Environment.Variables, fn).toMatchObject({
          [SSM_OUTPUT_BUCKET.env]: { Ref: bucket },
        });
        const statements = policies
          .filter((p) => attachedTo(p) === roles[i])
          .flatMap((p) => p.Properties.PolicyDocument.Statement);
        const onBucket = statements.filter((s: { Resource: unknown }) =>
          JSON.stringify(s.Resource).includes(bucket),
        );
        expect(onBucket, fn).toEqual([
          { Effect: 'Allow', Action: ['s3:DeleteObject', 's3:GetObject'], Resource: outputObjects },
        ]);
      }
      // No other function learns of the bucket or may touch it.
      for (const [id, fn] of Object.entries(functions)) {
        if (!reaching.includes(id))
          expect(fn.Properties.Environment?.Variables ?? {}, id).not.toHaveProperty(SSM_OUTPUT_BUCKET.env);
      }
      for (const policy of policies) {
        if (attachedTo(policy) === undefined)
          expect(JSON.stringify(policy.Properties.PolicyDocument)).not.toContain(bucket);
      }
    });

    it('gives managed nodes a policy to write their command output there, and nothing more', () => {
      const { bucket, outputObjects } = ids();
      template.hasResourceProperties('AWS::IAM::ManagedPolicy', {
        PolicyDocument: {
          Statement: [
            { Effect: 'Allow', Action: 's3:PutObject', Resource: outputObjects },
            {
              Effect: 'Allow',
              Action: 's3:GetEncryptionConfiguration',
              Resource: { 'Fn::GetAtt': [bucket, 'Arn'] },
            },
          ],
        },
      });
      template.hasOutput('SsmNodePolicyArn', {});
    });

    it('expires what a failed capture left behind after a day, encrypted, private, TLS only, access logged', () => {
      const { bucket } = ids();
      expect(template.findResources('AWS::S3::Bucket')[bucket]?.Properties).toMatchObject({
        LifecycleConfiguration: {
          Rules: [expect.objectContaining({ ExpirationInDays: 1, Status: 'Enabled' })],
        },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        LoggingConfiguration: expect.objectContaining({ LogFilePrefix: 'ssmoutput/' }),
      });
      const policies = Object.values(template.findResources('AWS::S3::BucketPolicy')).filter((p) =>
        JSON.stringify(p.Properties.Bucket).includes(bucket),
      );
      expect(JSON.stringify(policies)).toContain('aws:SecureTransport');
    });
  });

  describe('cdk-nag AwsSolutions', () => {
    it('reports no unacknowledged error or warning', () => {
      expect(describeViolations(nagViolations(synthesized.app))).toEqual([]);
    });

    it('raises no CDK error or warning annotation', () => {
      const annotations = Annotations.fromStack(synthesized.stack);
      expect(annotations.findError('*', Match.anyValue())).toEqual([]);
      expect(annotations.findWarning('*', Match.anyValue())).toEqual([]);
    });
  });
});

describe('PersonaPlatform props', () => {
  it('drops deletion protection and retention when data may be destroyed', () => {
    const { template } = synthesize({ platform: { removalPolicy: RemovalPolicy.DESTROY } }, false);
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: Match.objectLike({ DeletionProtectionEnabled: false }),
      DeletionPolicy: 'Delete',
    });
    template.hasResource('AWS::KMS::Key', { DeletionPolicy: 'Delete' });
  });

  it('applies the configured log retention, stage name and throttling', () => {
    const { template } = synthesize(
      {
        platform: {
          logRetention: RetentionDays.ONE_WEEK,
          apiStageName: 'beta',
          apiThrottling: { rateLimit: 5, burstLimit: 10 },
        },
      },
      false,
    );
    for (const group of Object.values(template.findResources('AWS::Logs::LogGroup'))) {
      expect(group.Properties.RetentionInDays).toBe(7);
    }
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'beta',
      MethodSettings: [Match.objectLike({ ThrottlingRateLimit: 5, ThrottlingBurstLimit: 10 })],
    });
  });

  it('associates a given WAF web ACL with the stage and still passes cdk-nag', () => {
    const webAclArn = 'arn:aws:wafv2:eu-west-1:111122223333:regional/webacl/persona/abc';
    const synthesized = synthesize({ platform: { webAclArn } }, false);
    synthesized.template.hasResourceProperties('AWS::WAFv2::WebACLAssociation', { WebACLArn: webAclArn });
    expect(describeViolations(nagViolations(synthesized.app))).toEqual([]);
  });

  it('lets the functions that reach hosts decrypt aws-kms credentials under the given keys, only with a host in the context', () => {
    const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/0b0e5c33-6c4e-4c5a-9a57-1d9f5c0f2f10';
    const credentialKeys = [Key.fromKeyArn(new Stack(new App(), 'Keys'), 'Credentials', keyArn)];
    const synthesized = synthesize({ platform: { credentialKeys } }, false);
    const { workflows, api } = synthesized.stack.platform;
    const roles = [
      workflows.captureFunction,
      workflows.cloneFunction,
      workflows.personaSwitchFunction,
      synthesized.stack.platform.morph.morphFunction,
      api.functions['install-agent'],
      api.functions['revoke-agent'],
      synthesized.stack.platform.personaTriggers?.sampleFunction as IConstruct & { role?: IConstruct },
    ].map((f) => logicalId(f.role as IConstruct));
    const policies = Object.values(synthesized.template.findResources('AWS::IAM::Policy'));
    for (const role of roles) {
      const statements = policies
        .filter((p) => JSON.stringify(p.Properties.Roles).includes(role))
        .flatMap((p) => p.Properties.PolicyDocument.Statement);
      expect(
        statements.filter((s) => JSON.stringify(s.Resource).includes(keyArn)),
        role,
      ).toEqual([
        {
          Effect: 'Allow',
          Action: 'kms:Decrypt',
          Resource: keyArn,
          Condition: { Null: { 'kms:EncryptionContext:persona:host': 'false' } },
        },
      ]);
    }
    // No other role may use the keys.
    for (const policy of policies) {
      if (!roles.some((role) => JSON.stringify(policy.Properties.Roles).includes(role)))
        expect(JSON.stringify(policy.Properties.PolicyDocument)).not.toContain(keyArn);
    }
    // Without the prop no other key is decryptable by the tasks.
    const plain = synthesize({}, false);
    expect(JSON.stringify(plain.template.toJSON())).not.toContain(keyArn);
  });

  it('runs the functions that reach hosts, and only them, in the given VPC, and still passes cdk-nag', () => {
    const captureVpc = Vpc.fromVpcAttributes(new Stack(new App(), 'Network'), 'Vpc', {
      vpcId: 'vpc-0a1b2c3d4e5f60718',
      availabilityZones: ['eu-west-1a', 'eu-west-1b'],
      privateSubnetIds: ['subnet-0a1b2c3d4e5f60718', 'subnet-0f1e2d3c4b5a60718'],
    });
    const synthesized = synthesize({ platform: { captureVpc } }, false);
    const { workflows, api } = synthesized.stack.platform;
    const reaching = [
      workflows.captureFunction,
      workflows.cloneFunction,
      workflows.personaSwitchFunction,
      synthesized.stack.platform.morph.morphFunction,
      // An agent is installed over the same SSH or SSM as a capture.
      api.functions['install-agent'],
      api.functions['revoke-agent'],
      // Sampling reads hosts over the same SSH or SSM.
      synthesized.stack.platform.personaTriggers?.sampleFunction as IConstruct,
    ].map((f) => logicalId(f));
    for (const [id, fn] of Object.entries(synthesized.template.findResources('AWS::Lambda::Function'))) {
      if (reaching.includes(id))
        expect(fn.Properties.VpcConfig?.SubnetIds, id).toEqual([
          'subnet-0a1b2c3d4e5f60718',
          'subnet-0f1e2d3c4b5a60718',
        ]);
      else expect(fn.Properties.VpcConfig, id).toBeUndefined();
    }
    expect(describeViolations(nagViolations(synthesized.app))).toEqual([]);
  });

  it('leaves API Gateway’s account settings alone when asked to', () => {
    const { template } = synthesize({ platform: { apiGatewayCloudWatchRole: false } }, false);
    template.resourceCountIs('AWS::ApiGateway::Account', 0);
  });

  it('makes API Gateway’s logging role only where `-c apiGatewayCloudWatchRole=true` asks for it', () => {
    const stackWith = (context: Record<string, unknown>) => {
      const app = new App({ context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [], ...context } });
      return Template.fromStack(new PersonaStack(app, 'PersonaStack'));
    };
    stackWith({}).resourceCountIs('AWS::ApiGateway::Account', 0);
    stackWith({ apiGatewayCloudWatchRole: 'true' }).resourceCountIs('AWS::ApiGateway::Account', 1);
    stackWith({ apiGatewayCloudWatchRole: 'yes please' }).resourceCountIs('AWS::ApiGateway::Account', 0);
  });
});
