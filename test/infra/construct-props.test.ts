import { readFileSync } from 'node:fs';
import type { PolicyViolation } from 'aws-cdk-lib';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { BillingMode } from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Key } from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { LayerVersion } from 'aws-cdk-lib/aws-lambda';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { DATA_BUCKET, PROFILES_TABLE, TABLES } from '../../core/storage/definitions.js';
import { PersonaPlatform, type PersonaPlatformProps } from '../../infra/platform.js';

// The same feature flags `cdk synth` runs with; no function is bundled (these are about props).
const CDK_CONTEXT: Record<string, unknown> = JSON.parse(
  readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8'),
).context;

interface Embedded {
  readonly app: App;
  readonly stack: Stack;
  readonly platform: PersonaPlatform;
  readonly template: Template;
}

/** An app of someone else's that embeds the platform; `prepare` makes what it already has. */
function embed(props: (stack: Stack) => PersonaPlatformProps = () => ({})): Embedded {
  const app = new App({ context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Consumer');
  const platform = new PersonaPlatform(stack, 'Persona', props(stack));
  return { app, stack, platform, template: Template.fromStack(stack) };
}

function logicalId(construct: { node: { defaultChild?: unknown } }, stack: Stack): string {
  return stack.getLogicalId(construct.node.defaultChild as never);
}

function nagErrors(app: App): string[] {
  return new AwsSolutionsChecks(app)
    .validateScope(app)
    .violations.map(
      (v: PolicyViolation) =>
        `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
    );
}

/** The functions that reach hosts over SSH, which run in captureVpc. */
function hostFunctions(platform: PersonaPlatform): lambda.Function[] {
  const triggers = platform.personaTriggers;
  if (!triggers) throw new Error('persona triggers are on by default');
  return [
    platform.workflows.captureFunction as lambda.Function,
    platform.workflows.cloneFunction as lambda.Function,
    platform.workflows.personaSwitchFunction as lambda.Function,
    triggers.sampleFunction,
    platform.api.functions['install-agent'],
    platform.api.functions['revoke-agent'],
    platform.morph.morphFunction,
  ];
}

// Each synthesis builds the whole platform: tens of seconds on a busy machine.
describe('PersonaPlatform props', { timeout: 300_000 }, () => {
  it('keeps data in an existing bucket, granted under the key it is imported with', () => {
    const { app, stack, platform, template } = embed((scope) => ({
      dataBucket: Bucket.fromBucketAttributes(scope, 'Existing', {
        bucketName: 'acme-persona-data',
        encryptionKey: Key.fromKeyArn(scope, 'ExistingKey', 'arn:aws:kms:eu-west-1:111122223333:key/abcd'),
      }),
    }));
    // Persona's own buckets are the access log bucket and the SSM output bucket, no data bucket.
    template.resourceCountIs('AWS::S3::Bucket', 2);
    expect(platform.storage.bucket.bucketName).toBe('acme-persona-data');
    const getProfile = template.toJSON().Resources[logicalId(platform.api.functions['get-profile'], stack)];
    expect(getProfile.Properties.Environment.Variables[DATA_BUCKET.env]).toBe('acme-persona-data');
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).toContain(':s3:::acme-persona-data/profiles/*');
    expect(policies).toContain('arn:aws:kms:eu-west-1:111122223333:key/abcd');
    // Still without findings of cdk-nag, the imported bucket's grants acknowledged too.
    expect(nagErrors(app)).toEqual([]);
  });

  it('bills the tables on demand by default, or provisioned with capacity per table and index', () => {
    embed().template.allResourcesProperties('AWS::DynamoDB::Table', { BillingMode: 'PAY_PER_REQUEST' });

    const { template } = embed(() => ({
      tableBilling: {
        billingMode: BillingMode.PROVISIONED,
        readCapacity: 3,
        writeCapacity: 2,
        tables: { [PROFILES_TABLE.id]: { readCapacity: 40 } },
      },
    }));
    const tables = Object.values(template.findResources('AWS::DynamoDB::Table'));
    expect(tables).toHaveLength(TABLES.length);
    for (const table of tables) {
      expect(table.Properties.BillingMode).toBeUndefined();
      const profiles = table.Properties.KeySchema.some(
        (k: { AttributeName: string }) => k.AttributeName === PROFILES_TABLE.partitionKey.name,
      );
      expect(table.Properties.ProvisionedThroughput.WriteCapacityUnits).toBe(2);
      if (!profiles) expect(table.Properties.ProvisionedThroughput.ReadCapacityUnits).toBe(3);
      for (const index of table.Properties.GlobalSecondaryIndexes ?? [])
        expect(index.ProvisionedThroughput).toEqual(table.Properties.ProvisionedThroughput);
    }
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      ProvisionedThroughput: { ReadCapacityUnits: 40, WriteCapacityUnits: 2 },
    });
  });

  it('refuses table capacity it cannot apply, naming the field', () => {
    expect(() => embed(() => ({ tableBilling: { readCapacity: 10 } }))).toThrow(
      /tableBilling\.readCapacity: capacity applies to PROVISIONED billing only/,
    );
    expect(() =>
      embed(() => ({ tableBilling: { billingMode: BillingMode.PROVISIONED, tables: { Profile: {} } } })),
    ).toThrow(/tableBilling\.tables\.Profile: there is no table Profile/);
    expect(() =>
      embed(() => ({
        tableBilling: { billingMode: BillingMode.PROVISIONED, tables: { Hosts: { writeCapacity: 0 } } },
      })),
    ).toThrow(/tableBilling\.tables\.Hosts\.writeCapacity must be a whole number/);
  });

  it('runs the functions that reach hosts in the given subnets and security groups, and no other', () => {
    const { stack, platform, template } = embed((scope) => {
      const vpc = ec2.Vpc.fromVpcAttributes(scope, 'Vpc', {
        vpcId: 'vpc-0123456789abcdef0',
        availabilityZones: ['eu-west-1a', 'eu-west-1b'],
        privateSubnetIds: ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0aaaaaaaaaaaaaaa2'],
        isolatedSubnetIds: ['subnet-0bbbbbbbbbbbbbbb1', 'subnet-0bbbbbbbbbbbbbbb2'],
      });
      return {
        captureVpc: vpc,
        captureSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
        captureSecurityGroups: [ec2.SecurityGroup.fromSecurityGroupId(scope, 'Ssh', 'sg-0123456789abcdef1')],
      };
    });
    const resources = template.toJSON().Resources;
    const reaching = new Set(hostFunctions(platform).map((fn) => logicalId(fn, stack)));
    expect(reaching.size).toBe(7);
    for (const [id, resource] of Object.entries(template.findResources('AWS::Lambda::Function'))) {
      if (reaching.has(id)) {
        expect(resource.Properties.VpcConfig, id).toEqual({
          SubnetIds: ['subnet-0bbbbbbbbbbbbbbb1', 'subnet-0bbbbbbbbbbbbbbb2'],
          SecurityGroupIds: ['sg-0123456789abcdef1'],
        });
      } else expect(resources[id].Properties.VpcConfig, id).toBeUndefined();
    }
    // The group given is the only one: none of Persona's own.
    template.resourceCountIs('AWS::EC2::SecurityGroup', 0);
  });

  it('refuses subnets or security groups without the VPC they belong to', () => {
    expect(() =>
      embed((scope) => ({
        captureSecurityGroups: [ec2.SecurityGroup.fromSecurityGroupId(scope, 'Ssh', 'sg-0123456789abcdef1')],
      })),
    ).toThrow(/captureSubnets and captureSecurityGroups need captureVpc/);
  });

  it('sizes each group of functions as told, the others as before', () => {
    const { stack, platform, template } = embed(() => ({
      functions: {
        api: { memorySize: 1024, timeout: Duration.seconds(20) },
        capture: { memorySize: 3008, timeout: Duration.minutes(10) },
        personaSample: { memorySize: 768 },
      },
    }));
    const resources = template.toJSON().Resources;
    const props = (fn: { node: { defaultChild?: unknown } }) => resources[logicalId(fn, stack)].Properties;
    expect(props(platform.api.functions['get-host'])).toMatchObject({ MemorySize: 1024, Timeout: 20 });
    expect(props(platform.workflows.captureFunction)).toMatchObject({ MemorySize: 3008, Timeout: 600 });
    expect(props(platform.personaTriggers?.sampleFunction as lambda.Function)).toMatchObject({
      MemorySize: 768,
      Timeout: 55,
    });
    // Untouched groups keep their own.
    expect(props(platform.workflows.cloneFunction)).toMatchObject({ MemorySize: 1024, Timeout: 900 });
    expect(props(platform.api.functions['install-agent'])).toMatchObject({ MemorySize: 512, Timeout: 29 });
  });

  it('refuses sizes Lambda or API Gateway cannot run, naming the group', () => {
    expect(() => embed(() => ({ functions: { api: { timeout: Duration.seconds(30) } } }))).toThrow(
      /functions\.api\.timeout: API Gateway waits 29 seconds at most/,
    );
    expect(() => embed(() => ({ functions: { clone: { memorySize: 64 } } }))).toThrow(
      /CloneTask: memorySize must be a whole number of MB from 128 to 10240, not 64/,
    );
  });

  it('gives every function the Powertools layer, one for the stack, or the one it is given instead', () => {
    const functionsOf = (template: Template) =>
      Object.values(
        template.findResources('AWS::Lambda::Function', { Properties: { Handler: 'index.main' } }),
      ) as { Properties: { Layers: unknown[] } }[];
    const own = embed();
    const layers = own.template.findResources('AWS::Lambda::LayerVersion');
    expect(Object.values(layers).map((l) => l.Properties.Description)).toEqual(
      expect.arrayContaining([expect.stringContaining('Powertools'), expect.stringContaining('ssh2')]),
    );
    const powertools = Object.keys(layers).find((id) =>
      layers[id]?.Properties.Description.includes('Powertools'),
    );
    for (const fn of functionsOf(own.template))
      expect(fn.Properties.Layers).toContainEqual({ Ref: powertools });

    const arn = 'arn:aws:lambda:eu-west-1:094274211123:layer:AWSLambdaPowertoolsTypeScriptV2:40';
    const given = embed((stack) => ({
      powertoolsLayer: LayerVersion.fromLayerVersionArn(stack, 'Powertools', arn),
    }));
    const left = Object.values(given.template.findResources('AWS::Lambda::LayerVersion'));
    expect(left.map((l) => l.Properties.Description).join()).not.toContain('Powertools');
    for (const fn of functionsOf(given.template)) expect(fn.Properties.Layers).toContainEqual(arn);
  });

  it("leaves API Gateway's account-wide CloudWatch role alone unless asked to make it", () => {
    embed().template.resourceCountIs('AWS::ApiGateway::Account', 0);
    const { template } = embed(() => ({ apiGatewayCloudWatchRole: true }));
    template.resourceCountIs('AWS::ApiGateway::Account', 1);
    template.hasResourceProperties('AWS::IAM::Role', {
      ManagedPolicyArns: Match.arrayWith([
        Match.objectLike({
          'Fn::Join': Match.arrayWith([
            Match.arrayWith([Match.stringLikeRegexp('AmazonAPIGatewayPushToCloudWatchLogs')]),
          ]),
        }),
      ]),
    });
  });
});
