// The morph workflow in AWS: its task function (one for every step, like the clone's), the state
// machine from statemachines/morph.asl.json, the start route's right to start it, and the target
// profiles the recommendation and start routes read, bundled beside their code.
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { PersonaApi } from './api.js';
import { PROJECT_ROOT } from './api.js';
import type { BundleSpec } from './bundling.js';
import { type PersonaFunctionProps, personaFunction } from './function.js';
import { CLONE_TASK_GRANTS } from './permissions.js';
import type { PersonaStorage } from './storage.js';
import type { PersonaWorkflows } from './workflows.js';

/** The API functions that read target profiles; the targets go beside their code, as JSON. */
export const TARGET_READERS = ['get-host-recommendation', 'start-morph', 'put-morph-policy'] as const;

/**
 * The shipped target profiles as bundle files: examples/targets/<name>.yaml as <name>.json beside
 * index.mjs, where functions/shared/morph-targets.ts looks in Lambda (LAMBDA_TASK_ROOT). As JSON,
 * a function reads them without loading the YAML parser.
 */
export function targetFiles(projectRoot: string): NonNullable<BundleSpec['files']> {
  return readdirSync(path.join(projectRoot, 'examples', 'targets'))
    .filter((f) => /^[a-z0-9][a-z0-9-]*\.ya?ml$/.test(f))
    .sort()
    .map((f) => ({
      from: path.join('examples', 'targets', f),
      to: f.replace(/\.ya?ml$/, '.json'),
      json: true,
    }));
}

export interface PersonaMorphProps {
  readonly storage: PersonaStorage;
  readonly workflows: PersonaWorkflows;
  readonly api: PersonaApi;
  readonly logRetention: logs.RetentionDays;
  readonly logRemovalPolicy: RemovalPolicy;
  /** Where the task reaches hosts over SSH (PersonaPlatformProps.captureVpc). @default none */
  readonly vpc?: NonNullable<PersonaFunctionProps['vpc']>;
  readonly projectRoot?: string;
}

export class PersonaMorph extends Construct {
  /** Morphs a host: LoadProfile, LoadTarget, ComputeDelta, Snapshot, ApplyLive, Watch, RecordProfile, Rollback. */
  readonly stateMachine: sfn.StateMachine;
  /** One function for every step of the morph workflow. */
  readonly morphFunction: lambda.Function;

  constructor(scope: Construct, id: string, props: PersonaMorphProps) {
    super(scope, id);
    const fn = personaFunction(this, 'MorphTask', {
      projectRoot: props.projectRoot ?? PROJECT_ROOT,
      retention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
      entry: path.join('functions', 'steps', 'morph', 'handler.ts'),
      description: 'Persona workflow task: morph a host toward a target profile, watch it, or roll it back',
      memorySize: 1024,
      // One step is one invocation; Watch samples its whole period (at most 840 s) in one.
      timeout: Duration.minutes(15),
      layers: ['ssh', 'azure'],
      ...(props.vpc ? { vpc: props.vpc } : {}),
    });
    // What a clone's task reaches: hosts, the journal, snapshots, operation documents, and the
    // profiles it records the new version in.
    props.storage.connect(fn, CLONE_TASK_GRANTS);
    props.workflows.allowReachHosts(fn);
    if (fn.role)
      Validations.of(fn.role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Tracing, VPC network interfaces and SSM command results (GetCommandInvocation, CancelCommand) support no resource-level permissions.',
      });
    this.morphFunction = fn;
    this.stateMachine = props.workflows.addWorkflow('Morph', 'morph', {
      morph: fn,
      'fail-operation': props.workflows.failOperationFunction as lambda.Function,
    });
    props.workflows.allowStart(props.api.functions['start-morph'], 'morph');
  }
}
