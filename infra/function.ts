import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { AssetHashType, DockerImage, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct, IConstruct } from 'constructs';
import { type BundleSpec, bundleName, bundleSync } from './bundling.js';
import { buildLayerSync, type LayerName, LIBRARY_LAYERS } from './layers.js';

/**
 * Where the package build puts every function's prebuilt bundle (scripts/build-package.ts): a
 * folder beside the packaged construct. In this repository it does not exist, and functions are
 * bundled from source.
 */
export const PREBUILT_ROOT = fileURLToPath(new URL('../lambda/', import.meta.url));

/** Where the package build puts the library layers, beside the functions (dist/layers/<name>). */
export const PREBUILT_LAYERS_ROOT = fileURLToPath(new URL('../layers/', import.meta.url));

/** Memory and time-out of a function, where the platform's props override the defaults. */
export interface FunctionSizing {
  /** Megabytes, 128 to 10,240. */
  readonly memorySize?: number;
  readonly timeout?: Duration;
}

/**
 * Sizing by group of functions (PersonaPlatformProps.functions); each group's defaults are in
 * its description.
 */
export interface FunctionSizings {
  /** Every API route's function but the two that reach hosts. @default 512 MB, 10 seconds */
  readonly api?: FunctionSizing;
  /** Installing and removing a host's agent (they reach the host). @default 512 MB, 29 seconds */
  readonly agentInstall?: FunctionSizing;
  /** The agent routes' authoriser. @default 256 MB, 5 seconds */
  readonly agentAuthorizer?: FunctionSizing;
  /** The capture task. @default 1024 MB, 14 minutes */
  readonly capture?: FunctionSizing;
  /** The clone task. @default 1024 MB, 15 minutes */
  readonly clone?: FunctionSizing;
  /** The persona-switch task. @default 1024 MB, 15 minutes */
  readonly personaSwitch?: FunctionSizing;
  /** The workflows' failure path. @default 256 MB, 30 seconds */
  readonly failOperation?: FunctionSizing;
  /** Persona evaluation at window edges and alarm changes. @default 512 MB, 5 minutes */
  readonly personaEvaluate?: FunctionSizing;
  /** Persona sampling, every minute. @default 512 MB, 55 seconds */
  readonly personaSample?: FunctionSizing;
}

const BUNDLE_SPECS = new WeakMap<IConstruct, BundleSpec>();

/** What the function's code is built from, for a function made by personaFunction. */
export function bundleSpecOf(construct: IConstruct): BundleSpec | undefined {
  return BUNDLE_SPECS.get(construct);
}

export interface PersonaFunctionProps {
  /** The handler file, relative to the project root. */
  readonly entry: string;
  readonly description: string;
  readonly projectRoot: string;
  readonly retention: logs.RetentionDays;
  readonly logRemovalPolicy: RemovalPolicy;
  readonly memorySize: number;
  readonly timeout: Duration;
  /** Overrides memorySize and timeout (PersonaPlatformProps.functions). */
  readonly sizing?: FunctionSizing;
  /** Modules esbuild leaves out of the bundle (optional native add-ons that are never loaded). */
  readonly externalModules?: readonly string[];
  /** The library layers it loads besides Powertools (infra/layers.ts). */
  readonly layers?: BundleSpec['layers'];
  readonly vpc?: Pick<lambda.FunctionProps, 'vpc' | 'vpcSubnets' | 'securityGroups'>;
  /** Files the code reads beside itself: project-relative source, name in the bundle's folder. */
  readonly files?: BundleSpec['files'];
}

/**
 * A Persona Lambda function: Node.js 22 on arm64, bundled with esbuild (AWS SDK from the
 * runtime; prebuilt when the construct comes from the package), JSON logs to its own log group,
 * its own role, active tracing.
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

  const spec: BundleSpec = {
    entry: props.entry,
    ...(props.externalModules ? { externalModules: props.externalModules } : {}),
    ...(props.layers ? { layers: props.layers } : {}),
    ...(props.files ? { files: props.files } : {}),
  };
  const memorySize = props.sizing?.memorySize ?? props.memorySize;
  if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10_240) {
    throw new Error(
      `${scope.node.path}/${id}: memorySize must be a whole number of MB from 128 to 10240, not ${memorySize}`,
    );
  }
  const fn = new nodejs.NodejsFunction(scope, id, {
    description: props.description,
    code: functionCode(props.projectRoot, spec),
    handler: 'index.main',
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    memorySize,
    timeout: props.sizing?.timeout ?? props.timeout,
    role,
    logGroup,
    layers: (['powertools', ...(spec.layers ?? [])] as const).map((name) =>
      libraryLayer(scope, name, props.projectRoot),
    ),
    loggingFormat: lambda.LoggingFormat.JSON,
    tracing: lambda.Tracing.ACTIVE,
    ...(props.vpc ?? {}),
    environment: {
      POWERTOOLS_SERVICE_NAME: 'persona',
      NODE_OPTIONS: '--enable-source-maps',
    },
  });
  BUNDLE_SPECS.set(fn, spec);

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

const LAYERS = new WeakMap<Stack, Map<LayerName, lambda.ILayerVersion>>();

/** The outermost stack of a scope: layers are shared by the functions of its nested stacks too. */
function rootStack(scope: IConstruct): Stack {
  let stack = Stack.of(scope);
  while (stack.nestedStackParent) stack = stack.nestedStackParent;
  return stack;
}

/**
 * Has a stack's functions use `layer` for a library instead of the one Persona builds, such as
 * AWS's own published Powertools layer (PersonaPlatformProps.powertoolsLayer). Before any
 * function is made.
 */
export function useLibraryLayer(scope: IConstruct, name: LayerName, layer: lambda.ILayerVersion): void {
  const stack = rootStack(scope);
  const layers = LAYERS.get(stack) ?? new Map<LayerName, lambda.ILayerVersion>();
  if (layers.has(name) && layers.get(name) !== layer)
    throw new Error(`${scope.node.path}: the ${name} layer is already chosen for this stack`);
  layers.set(name, layer);
  LAYERS.set(stack, layers);
}

/** A library layer, one per stack for all its functions, made the first time one needs it. */
function libraryLayer(scope: IConstruct, name: LayerName, projectRoot: string): lambda.ILayerVersion {
  const stack = rootStack(scope);
  const layers = LAYERS.get(stack) ?? new Map<LayerName, lambda.ILayerVersion>();
  LAYERS.set(stack, layers);
  let layer = layers.get(name);
  if (layer === undefined) {
    layer = new lambda.LayerVersion(stack, `Persona${name[0]?.toUpperCase()}${name.slice(1)}Layer`, {
      code: layerCode(name, projectRoot),
      description: LIBRARY_LAYERS[name].description,
      compatibleRuntimes: [lambda.Runtime.NODEJS_22_X],
      compatibleArchitectures: [lambda.Architecture.ARM_64],
    });
    layers.set(name, layer);
  }
  return layer;
}

/** The prebuilt layer when the package ships one, else built from the project's node_modules. */
function layerCode(name: LayerName, projectRoot: string): lambda.Code {
  const prebuilt = path.join(PREBUILT_LAYERS_ROOT, name);
  if (existsSync(path.join(prebuilt, 'nodejs'))) return lambda.Code.fromAsset(prebuilt);
  return builtHere(path.join(projectRoot, 'infra'), `layer ${name}`, (outputDir) =>
    buildLayerSync(projectRoot, name, outputDir),
  );
}

/**
 * The prebuilt bundle when the package ships one, else the handler bundled from source by
 * esbuild in this process (infra/bundling.ts), as the package build does it.
 */
function functionCode(projectRoot: string, spec: BundleSpec): lambda.Code {
  const prebuilt = path.join(PREBUILT_ROOT, bundleName(spec.entry));
  if (existsSync(path.join(prebuilt, 'index.mjs'))) return lambda.Code.fromAsset(prebuilt);
  const entry = path.join(projectRoot, spec.entry);
  if (!existsSync(entry)) {
    throw new Error(
      `${spec.entry} has neither a prebuilt bundle in ${prebuilt} nor a source in ${projectRoot}`,
    );
  }
  return builtHere(path.dirname(entry), `function ${spec.entry}`, (outputDir) =>
    bundleSync(projectRoot, spec, outputDir),
  );
}

/**
 * Code that `build` writes into CDK's staging folder, in this process (esbuild, not Docker).
 * `key` names what is built: CDK reuses a build for another asset with the same source folder
 * and bundling options (the three layers share one), and the function it calls is not among them.
 */
function builtHere(source: string, key: string, build: (outputDir: string) => unknown): lambda.Code {
  return lambda.Code.fromAsset(source, {
    // The output's hash, not its sources': a change anywhere in what it imports redeploys it.
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      // Never pulled: local bundling always succeeds or throws.
      image: DockerImage.fromRegistry('public.ecr.aws/sam/build-nodejs22.x'),
      environment: { PERSONA_BUILD: key },
      local: {
        tryBundle(outputDir: string) {
          build(outputDir);
          return true;
        },
      },
    },
  });
}
