import * as path from 'node:path';
import type { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

export interface PersonaFunctionProps {
  /** The handler file, relative to the project root. */
  readonly entry: string;
  readonly description: string;
  readonly projectRoot: string;
  readonly retention: logs.RetentionDays;
  readonly logRemovalPolicy: RemovalPolicy;
  readonly memorySize: number;
  readonly timeout: Duration;
  /** Modules esbuild leaves out of the bundle (optional native add-ons that are never loaded). */
  readonly externalModules?: readonly string[];
  readonly vpc?: Pick<lambda.FunctionProps, 'vpc' | 'vpcSubnets' | 'securityGroups'>;
  /** Commands run after bundling, in the bundle's folder: files the code reads beside itself. */
  readonly afterBundling?: (inputDir: string, outputDir: string) => string[];
}

/**
 * A Persona Lambda function: Node.js 22 on arm64, bundled with esbuild (AWS SDK from the
 * runtime), JSON logs to its own log group, its own role, active tracing.
 */
export function personaFunction(
  scope: Construct,
  id: string,
  props: PersonaFunctionProps,
): nodejs.NodejsFunction {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
    retention: props.retention,
    removalPolicy: props.logRemovalPolicy,
  });
  // Own role instead of the default AWSLambdaBasicExecutionRole, whose logs:* rights span every
  // log group in the account: this one may write to its own log group only.
  const role = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: props.description,
  });
  logGroup.grantWrite(role);
  if (props.vpc?.vpc) {
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: [
          'ec2:CreateNetworkInterface',
          'ec2:DescribeNetworkInterfaces',
          'ec2:DeleteNetworkInterface',
        ],
        resources: ['*'],
      }),
    );
  }

  const fn = new nodejs.NodejsFunction(scope, id, {
    description: props.description,
    entry: path.join(props.projectRoot, props.entry),
    handler: 'main',
    projectRoot: props.projectRoot,
    depsLockFilePath: path.join(props.projectRoot, 'package-lock.json'),
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    memorySize: props.memorySize,
    timeout: props.timeout,
    role,
    logGroup,
    loggingFormat: lambda.LoggingFormat.JSON,
    tracing: lambda.Tracing.ACTIVE,
    ...(props.vpc ?? {}),
    environment: {
      POWERTOOLS_SERVICE_NAME: 'persona',
      NODE_OPTIONS: '--enable-source-maps',
    },
    bundling: {
      format: nodejs.OutputFormat.ESM,
      target: 'node22',
      platform: 'node',
      mainFields: ['module', 'main'],
      minify: true,
      sourceMap: true,
      // Stack traces need the mappings, not a second copy of the sources in every bundle.
      sourcesContent: false,
      // Bundled CommonJS dependencies still call require(), which ESM does not define. The
      // alias keeps the banner from colliding with a bundled `createRequire` import.
      banner:
        "import { createRequire as personaCreateRequire } from 'node:module'; const require = personaCreateRequire(import.meta.url);",
      externalModules: ['@aws-sdk/*', ...(props.externalModules ?? [])],
      logLevel: nodejs.LogLevel.WARNING,
      ...(props.afterBundling
        ? {
            commandHooks: {
              beforeBundling: () => [],
              beforeInstall: () => [],
              afterBundling: props.afterBundling,
            },
          }
        : {}),
    },
  });

  Validations.of(fn).acknowledge({
    id: 'AwsSolutions-L1',
    reason:
      'Node.js 22 is the runtime the project builds, tests and runs locally with; moving to a newer runtime is a deliberate upgrade of the whole toolchain.',
  });
  Validations.of(role).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'Active tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords, and a function in a VPC needs ENI management; neither supports resource-level permissions.',
  });
  return fn;
}
