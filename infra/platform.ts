import { Duration, NestedStack, RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { AbandonedOperations } from './abandoned.js';
import type { ApiThrottling } from './api.js';
import { PersonaApi } from './api.js';
import { type CloneCloudProps, pickCloneCloudProps } from './cloud.js';
import { type FunctionSizings, useLibraryLayer } from './function.js';
import {
  announceCloneOutcomes,
  PersonaMonitoring,
  type PersonaMonitoringProps,
  workflowsAndFunctions,
} from './monitoring.js';
import { PersonaMorph } from './morph.js';
import { PersonaTriggers } from './personas.js';
import { PersonaStorage, type TableBilling } from './storage.js';
import { tagApplication } from './tags.js';
import { PersonaWorkflows } from './workflows.js';

/** Besides these, `cloneSubnets`, `cloneInstanceRoles` and `azureCredentialsSecret` (CloneCloudProps). */
export interface PersonaPlatformProps extends CloneCloudProps {
  /**
   * What happens to data (tables, buckets, key) and logs when they leave the stack. Use DESTROY
   * only for throwaway environments.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Refuse `DeleteTable` on the tables.
   * @default true unless `removalPolicy` is DESTROY
   */
  readonly deletionProtection?: boolean;
  /**
   * Customer-managed key for tables and the data bucket; it should rotate.
   * @default a new key with yearly rotation
   */
  readonly encryptionKey?: kms.IKey;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default 'v1' */
  readonly apiStageName?: string;
  /** @default 50 requests per second, bursts of 100 */
  readonly apiThrottling?: ApiThrottling;
  /**
   * Create API Gateway's CloudWatch Logs role and name it in the account's API Gateway settings.
   * There is one per account and region, and the API's logging needs one: turn this on only
   * where the account has none yet, in one stack.
   * @default false
   */
  readonly apiGatewayCloudWatchRole?: boolean;
  /**
   * The Powertools for AWS Lambda layer every function loads Logger, Metrics and Tracer from,
   * such as the one AWS publishes in each region
   * (`arn:aws:lambda:<region>:094274211123:layer:AWSLambdaPowertoolsTypeScriptV2:<version>`,
   * through `LayerVersion.fromLayerVersionArn`); it must provide the Powertools version this
   * package is built with. @default a layer built from this package's own Powertools
   */
  readonly powertoolsLayer?: lambda.ILayerVersion;
  /**
   * An existing bucket for Persona's data (profiles, snapshots, operation documents), which it
   * keeps under its own prefixes. Import it with its key when it is encrypted with a
   * customer-managed one (`Bucket.fromBucketAttributes(this, 'Data', { bucketArn, encryptionKey })`),
   * so the functions are granted that key; it should be versioned and private.
   * @default a new versioned bucket under `encryptionKey`, its access logged
   */
  readonly dataBucket?: s3.IBucket;
  /**
   * How the tables are billed: on demand, or PROVISIONED with read and write capacity for every
   * table (and its indexes) and per table by id (`{ tables: { Profiles: { readCapacity: 20 } } }`).
   * @default on demand
   */
  readonly tableBilling?: TableBilling;
  /**
   * Memory and time-outs of the functions, by group (`api`, `agentInstall`, `agentAuthorizer`,
   * `capture`, `clone`, `personaSwitch`, `failOperation`, `personaEvaluate`, `personaSample`).
   * API functions answer within API Gateway's 29 seconds; a workflow task's time-out does not
   * lengthen its step's own (the state machine's TimeoutSeconds).
   * @default each group's own (FunctionSizings)
   */
  readonly functions?: FunctionSizings;
  /** A REGIONAL WAFv2 web ACL to associate with the API stage. @default none */
  readonly webAclArn?: string;
  /**
   * Where captures, clones, persona switches and the agent install and revoke routes run, to
   * reach hosts over SSH (a VPC with a route to them).
   * @default none: hosts are reached over the internet or through SSM
   */
  readonly captureVpc?: ec2.IVpc;
  /** Subnets of captureVpc the functions that reach hosts run in. @default the VPC's private subnets */
  readonly captureSubnets?: ec2.SubnetSelection;
  /**
   * Security groups of the functions that reach hosts (capture, clone, persona switch, morph,
   * sampling, agent install and revoke): they need egress to the hosts' SSH ports.
   * @default one new group per function, all egress allowed
   */
  readonly captureSecurityGroups?: readonly ec2.ISecurityGroup[];
  /** Secrets Manager and SSM Parameter Store prefix for host credentials. @default 'persona/' */
  readonly credentialPrefix?: string;
  /**
   * KMS keys under which `aws-kms` credential references were encrypted (with the encryption
   * context `persona:host=<host>`). The capture and clone tasks may decrypt with them only with
   * that context. @default none: `aws-kms` references fail with AccessDenied
   */
  readonly credentialKeys?: readonly kms.IKey[];
  /**
   * What wakes persona evaluation besides POST /metrics and POST /signals: EventBridge
   * Scheduler schedules at the personas' window edges (kept by the persona write routes) and a
   * rule on the state changes of CloudWatch alarms named `Persona/…`. Off, personas with time
   * windows switch only when a metric report or a signal comes.
   * @default true
   */
  readonly personaTriggers?: boolean;
  /**
   * CloudWatch alarms, announced on `notificationTopic`: each workflow's executions failed, timed
   * out and aborted; each function's errors and throttles; the API's 5xx and p99 latency; each
   * table's throttles. And a dashboard of operations, captures, errors and latencies. Off, none
   * of them is made (abandoned operations are still failed: that is not monitoring).
   * @default true
   */
  readonly monitoring?: boolean;
  /**
   * Where alarms and clone outcomes are announced. Its owner lets cloudwatch.amazonaws.com and
   * events.amazonaws.com publish to it (and use its key, if encrypted), as Persona does for its own.
   * @default the topic the clone outcomes are published to (`notificationTopic`)
   */
  readonly notificationTopic?: sns.ITopic;
  /** p99 latency of the API over 5 minutes, three periods in a row, that raises an alarm. @default 5 seconds */
  readonly apiLatencyThreshold?: PersonaMonitoringProps['apiLatencyThreshold'];
  /**
   * Tags for every resource, besides `persona:application` and `persona:version` (the name and
   * version of Persona's package.json), which every resource carries. @default none
   */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * Persona on AWS: storage (tables, data bucket, key), the v1 API, the workflows and the topic
 * that announces clone outcomes. Secure by default, so that an app embedding it passes the
 * cdk-nag AwsSolutions checks without acknowledgements of its own.
 */
export class PersonaPlatform extends Construct {
  readonly storage: PersonaStorage;
  readonly api: PersonaApi;
  readonly workflows: PersonaWorkflows;
  /** The morph workflow: its task, its state machine, and the route that starts it. */
  readonly morph: PersonaMorph;
  /** The persona triggers; undefined when `personaTriggers` is off. */
  readonly personaTriggers: PersonaTriggers | undefined;
  /** Fails the operations whose workflow stopped without ending them: a rule and a sweeper. */
  readonly abandonedOperations: AbandonedOperations;
  /** The alarms and the dashboard; undefined when `monitoring` is off. */
  readonly monitoring: PersonaMonitoring | undefined;
  private readonly topic: sns.ITopic;

  constructor(scope: Construct, id: string, props: PersonaPlatformProps = {}) {
    super(scope, id);
    if (props.powertoolsLayer) useLibraryLayer(this, 'powertools', props.powertoolsLayer);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    checkApiSizing(props.functions);
    if (!props.captureVpc && (props.captureSubnets || props.captureSecurityGroups)) {
      throw new Error(
        'captureSubnets and captureSecurityGroups need captureVpc: they are where in it functions run',
      );
    }
    const hostsVpc = props.captureVpc
      ? {
          vpc: props.captureVpc,
          ...(props.captureSubnets ? { vpcSubnets: props.captureSubnets } : {}),
          ...(props.captureSecurityGroups ? { securityGroups: [...props.captureSecurityGroups] } : {}),
        }
      : undefined;
    const sizing = props.functions ?? {};

    this.storage = new PersonaStorage(this, 'Storage', {
      removalPolicy,
      ...(props.deletionProtection !== undefined ? { deletionProtection: props.deletionProtection } : {}),
      ...(props.encryptionKey ? { encryptionKey: props.encryptionKey } : {}),
      ...(props.dataBucket ? { bucket: props.dataBucket } : {}),
      ...(props.tableBilling ? { tableBilling: props.tableBilling } : {}),
    });

    this.api = new PersonaApi(this, 'Api', {
      storage: this.storage,
      stageName: props.apiStageName ?? 'v1',
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      logRemovalPolicy: removalPolicy,
      ...(props.apiThrottling ? { throttling: props.apiThrottling } : {}),
      cloudWatchRole: props.apiGatewayCloudWatchRole ?? false,
      ...(sizing.api?.memorySize !== undefined ? { memorySize: sizing.api.memorySize } : {}),
      ...(sizing.api?.timeout ? { timeout: sizing.api.timeout } : {}),
      sizing,
      ...(props.webAclArn ? { webAclArn: props.webAclArn } : {}),
      // Installing and removing an agent reach the host as the workflows' tasks do.
      ...(hostsVpc ? { hostsVpc } : {}),
    });

    this.workflows = new PersonaWorkflows(this, 'Workflows', {
      storage: this.storage,
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      logRemovalPolicy: removalPolicy,
      ...(props.captureVpc ? { vpc: props.captureVpc } : {}),
      ...(props.captureSubnets ? { vpcSubnets: props.captureSubnets } : {}),
      ...(props.captureSecurityGroups ? { securityGroups: [...props.captureSecurityGroups] } : {}),
      sizing,
      ...(props.credentialPrefix ? { credentialPrefix: props.credentialPrefix } : {}),
      ...(props.credentialKeys ? { credentialKeys: props.credentialKeys } : {}),
      cloud: pickCloneCloudProps(props),
    });
    this.workflows.allowStart(this.api.functions['start-capture'], 'capture');
    this.workflows.allowStart(this.api.functions['start-clone'], 'clone');
    // Installing and removing a host's agent reach the host as a capture does.
    this.workflows.allowReachHosts(this.api.functions['install-agent']);
    this.workflows.allowReachHosts(this.api.functions['revoke-agent']);
    // A manual activation starts the switch that applies it.
    this.workflows.allowStart(this.api.functions['activate-persona'], 'persona-switch');
    // Evaluation starts the switches it decides, wherever it runs.
    this.workflows.allowStart(this.api.functions['post-signal'], 'persona-switch');
    this.workflows.allowStart(this.api.functions['post-metrics'], 'persona-switch');
    // Morphs have their own task and state machine; POST /hosts/{host}/morph starts them.
    this.morph = new PersonaMorph(this, 'Morph', {
      storage: this.storage,
      workflows: this.workflows,
      api: this.api,
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      logRemovalPolicy: removalPolicy,
      ...(hostsVpc ? { vpc: hostsVpc } : {}),
    });
    if (props.personaTriggers ?? true) {
      this.personaTriggers = new PersonaTriggers(this, 'PersonaTriggers', {
        storage: this.storage,
        logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
        logRemovalPolicy: removalPolicy,
        ...(hostsVpc ? { hostsVpc } : {}),
        sizing,
      });
      this.workflows.allowStart(this.personaTriggers.evaluateFunction, 'persona-switch');
      // Sampling reaches hosts as a capture does, and starts the switches its evaluation decides.
      this.workflows.allowReachHosts(this.personaTriggers.sampleFunction);
      this.workflows.allowStart(this.personaTriggers.sampleFunction, 'persona-switch');
      // The same round evaluates morph policies and starts the morphs they decide.
      this.workflows.allowStart(this.personaTriggers.sampleFunction, 'morph');
      for (const writer of ['create-persona', 'put-persona', 'delete-persona'] as const)
        this.personaTriggers.allowSync(this.api.functions[writer]);
    } else {
      this.personaTriggers = undefined;
    }

    // Last: what follows watches every workflow and function built above.
    this.abandonedOperations = new AbandonedOperations(this, 'AbandonedOperations', {
      storage: this.storage,
      stateMachines: workflowsAndFunctions(this).stateMachines,
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      logRemovalPolicy: removalPolicy,
    });
    this.topic = props.notificationTopic ?? this.workflows.notificationTopic;
    if (props.notificationTopic)
      announceCloneOutcomes(this.workflows.notificationRule, props.notificationTopic);
    if (props.monitoring ?? true) {
      // A nested stack of its own: an alarm per function and per table would otherwise bring the
      // stack to CloudFormation's 500 resources as routes are added. What it watches comes in as
      // the nested stack's parameters (names and ARNs), which CDK wires.
      const scope = new NestedStack(this, 'MonitoringStack', {
        description: 'Persona: alarms on workflows, functions, tables and the API, and the dashboard',
      });
      this.monitoring = new PersonaMonitoring(scope, 'Monitoring', {
        topic: this.topic,
        ...workflowsAndFunctions(this),
        capture: { stateMachine: this.workflows.capture, function: this.workflows.captureFunction },
        tables: Object.values(this.storage.tables),
        api: this.api.restApi,
        ...(props.apiLatencyThreshold ? { apiLatencyThreshold: props.apiLatencyThreshold } : {}),
      });
    } else {
      this.monitoring = undefined;
    }
    tagApplication(this, props.tags);
  }

  /**
   * The SNS topic alarms and clone outcomes (`Clone Succeeded`, `Clone Rolled Back`,
   * `Clone Rollback Incomplete`, `Clone Planned`) are published to: subscribe to be told. The
   * `notificationTopic` prop when given.
   */
  get notificationTopic(): sns.ITopic {
    return this.topic;
  }

  /** The API's base URL, e.g. `https://abc123.execute-api.eu-west-1.amazonaws.com/v1/`. */
  get apiUrl(): string {
    return this.api.url;
  }
}

/** API Gateway gives an integration 29 seconds at most: an API function may not take longer. */
function checkApiSizing(sizing: FunctionSizings | undefined): void {
  for (const group of ['api', 'agentInstall', 'agentAuthorizer'] as const) {
    const timeout = sizing?.[group]?.timeout;
    if (timeout && timeout.toMilliseconds() > Duration.seconds(29).toMilliseconds()) {
      throw new Error(
        `functions.${group}.timeout: API Gateway waits 29 seconds at most, not ${timeout.toHumanString()}`,
      );
    }
  }
}
