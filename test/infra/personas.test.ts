// The persona triggers in the synthesised stack: the evaluate function and what it may do, the
// Scheduler group and the role Scheduler invokes it with, the rule on alarm state changes, what
// persona writers may do with schedules, and cdk-nag over all of it.
import { readFileSync } from 'node:fs';
import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { ALARM_PREFIX, SCHEDULE_ENV } from '../../core/persona/triggers.js';
import { TABLES } from '../../core/storage/definitions.js';
import { PERSONA_EVALUATION_GRANTS, PERSONA_SAMPLING_GRANTS } from '../../infra/permissions.js';
import { PersonaStack, type PersonaStackProps } from '../../infra/stack.js';

const CDK_CONTEXT: Record<string, unknown> = JSON.parse(
  readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8'),
).context;

const WRITERS = ['create-persona', 'put-persona', 'delete-persona'] as const;
const SYNC_ACTIONS = [
  'scheduler:CreateSchedule',
  'scheduler:UpdateSchedule',
  'scheduler:DeleteSchedule',
  'scheduler:GetSchedule',
];

/** Configuration only: bundling is skipped (the platform test bundles every function). */
function synthesize(props: PersonaStackProps = {}) {
  const app = new App({ context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
  const stack = new PersonaStack(app, 'PersonaStack', props);
  return { app, stack, template: Template.fromStack(stack) };
}

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

type Synthesized = ReturnType<typeof synthesize>;

/** Every statement of the policies attached to a role. */
function statementsOf({ template }: Synthesized, role: IConstruct): any[] {
  return Object.values(
    template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: Match.arrayWith([{ Ref: logicalId(role) }]) },
    }),
  ).flatMap((p) => p.Properties.PolicyDocument.Statement);
}

const actionsOf = (statement: { Action: string | string[] }) => [statement.Action].flat();

let s: Synthesized;
/** CDK names the group at synth: a literal. */
const groupName = (): string => s.stack.resolve(triggers().scheduleGroup.scheduleGroupName);
const triggers = () => {
  const t = s.stack.platform.personaTriggers;
  if (!t) throw new Error('no persona triggers');
  return t;
};

beforeAll(() => {
  s = synthesize();
}, 120_000);

describe('PersonaTriggers', () => {
  it('deploys the evaluate function from functions/events/persona-evaluate, told exactly the tables evaluation uses', () => {
    const fn = s.template.findResources('AWS::Lambda::Function')[logicalId(triggers().evaluateFunction)];
    expect(fn?.Properties).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Timeout: 300,
      TracingConfig: { Mode: 'Active' },
      Description: expect.stringContaining('window edges and alarm state changes'),
    });
    const variables = fn?.Properties.Environment.Variables ?? {};
    const wanted = Object.keys(PERSONA_EVALUATION_GRANTS.tables ?? {});
    for (const table of TABLES) {
      if (wanted.includes(table.id))
        expect(variables[table.env], table.id).toEqual({
          Ref: logicalId(s.stack.platform.storage.tables[table.id] as IConstruct),
        });
      else expect(variables, table.id).not.toHaveProperty(table.env);
    }
    expect(variables.PERSONA_SWITCH_STATE_MACHINE_ARN).toEqual({
      Ref: logicalId(s.stack.platform.workflows.personaSwitch),
    });
    // It syncs no schedules itself.
    expect(variables).not.toHaveProperty(SCHEDULE_ENV.group);
  });

  it('lets the evaluate function write host state and signals, read the rest, and start only persona switches', () => {
    const { storage, workflows } = s.stack.platform;
    const statements = statementsOf(s, triggers().evaluateFunction.role as IConstruct);
    const on = (table: string) =>
      statements
        .filter((st) => JSON.stringify(st.Resource).includes(logicalId(storage.tables[table] as IConstruct)))
        .flatMap(actionsOf);
    for (const [table, access] of Object.entries(PERSONA_EVALUATION_GRANTS.tables ?? {})) {
      expect(on(table), table).toContain('dynamodb:GetItem');
      if (access === 'read') expect(on(table), table).not.toContain('dynamodb:PutItem');
      else expect(on(table), table).toContain('dynamodb:PutItem');
    }
    expect(on('Profiles')).toEqual([]);
    expect(on('Agents')).toEqual([]);
    const starts = statements.filter((st) => actionsOf(st).some((a) => a.startsWith('states:')));
    expect(starts).toEqual([
      expect.objectContaining({
        Action: 'states:StartExecution',
        Resource: { Ref: logicalId(workflows.personaSwitch) },
      }),
    ]);
    expect(
      statements.flatMap(actionsOf).filter((a) => a.startsWith('scheduler:') || a === 'iam:PassRole'),
    ).toEqual([]);
  });

  it('makes a schedule group and a role that only Scheduler, for this account’s schedules of that group, assumes to invoke the function', () => {
    const group = logicalId(triggers().scheduleGroup);
    expect(Object.keys(s.template.findResources('AWS::Scheduler::ScheduleGroup'))).toEqual([group]);
    const role = s.template.findResources('AWS::IAM::Role')[logicalId(triggers().schedulerRole)];
    expect(role?.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      {
        Effect: 'Allow',
        Principal: { Service: 'scheduler.amazonaws.com' },
        Action: 'sts:AssumeRole',
        Condition: {
          StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
          ArnLike: {
            'aws:SourceArn': {
              'Fn::Join': [
                '',
                [
                  'arn:',
                  { Ref: 'AWS::Partition' },
                  ':scheduler:',
                  { Ref: 'AWS::Region' },
                  ':',
                  { Ref: 'AWS::AccountId' },
                  `:schedule/${groupName()}/*`,
                ],
              ],
            },
          },
        },
      },
    ]);
    expect(statementsOf(s, triggers().schedulerRole)).toEqual([
      {
        Effect: 'Allow',
        Action: 'lambda:InvokeFunction',
        Resource: { 'Fn::GetAtt': [logicalId(triggers().evaluateFunction), 'Arn'] },
      },
    ]);
  });

  it('hands the default bus’s state changes of alarms named Persona/… to the function, retried, and nothing else', () => {
    const rule = s.template.findResources('AWS::Events::Rule')[logicalId(triggers().alarmRule)];
    expect(rule?.Properties.EventPattern).toEqual({
      source: ['aws.cloudwatch'],
      'detail-type': ['CloudWatch Alarm State Change'],
      detail: { alarmName: [{ prefix: ALARM_PREFIX }] },
    });
    expect(rule?.Properties.State).toBe('ENABLED');
    expect(rule?.Properties.Targets).toEqual([
      expect.objectContaining({
        Arn: { 'Fn::GetAtt': [logicalId(triggers().evaluateFunction), 'Arn'] },
        RetryPolicy: { MaximumRetryAttempts: 4, MaximumEventAgeInSeconds: 3600 },
      }),
    ]);
    s.template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [logicalId(triggers().evaluateFunction), 'Arn'] },
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [logicalId(triggers().alarmRule), 'Arn'] },
    });
  });

  it('samples hosts without an agent every minute: the sampling function, its grants, CloudWatch reads', () => {
    const fn = s.template.findResources('AWS::Lambda::Function')[logicalId(triggers().sampleFunction)];
    expect(fn?.Properties).toMatchObject({
      Runtime: 'nodejs22.x',
      Timeout: 55,
      Description: expect.stringContaining('hosts without an agent'),
    });
    const variables = fn?.Properties.Environment.Variables ?? {};
    const wanted = Object.keys(PERSONA_SAMPLING_GRANTS.tables ?? {});
    expect(wanted).toEqual(expect.arrayContaining(['Agents', 'Metrics', 'HostPersonas', 'Hosts']));
    for (const table of TABLES) {
      if (wanted.includes(table.id)) expect(variables, table.id).toHaveProperty(table.env);
    }
    const rule = s.template.findResources('AWS::Events::Rule')[logicalId(triggers().samplingRule)];
    expect(rule?.Properties).toMatchObject({ ScheduleExpression: 'rate(1 minute)', State: 'ENABLED' });
    expect(rule?.Properties.Targets).toEqual([
      expect.objectContaining({
        Arn: { 'Fn::GetAtt': [logicalId(triggers().sampleFunction), 'Arn'] },
        RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
      }),
    ]);
    const statements = statementsOf(s, triggers().sampleFunction.role as IConstruct);
    // GetMetricData takes no resource: '*' (CDK may merge it with other such actions).
    const reads = statements.filter((st) => actionsOf(st).includes('cloudwatch:GetMetricData'));
    expect(reads.map((st) => [st.Effect, st.Resource])).toEqual([['Allow', '*']]);
    // It reaches hosts as a capture does: SSM Run Command among its rights.
    expect(statements.flatMap(actionsOf)).toContain('ssm:SendCommand');
  });

  it('lets the persona writers keep schedules of that group only, list them, and pass the role to Scheduler only', () => {
    const functions = s.template.findResources('AWS::Lambda::Function');
    for (const writer of WRITERS) {
      const fn = s.stack.platform.api.functions[writer];
      expect(functions[logicalId(fn)]?.Properties.Environment.Variables, writer).toMatchObject({
        [SCHEDULE_ENV.group]: groupName(),
        [SCHEDULE_ENV.target]: { 'Fn::GetAtt': [logicalId(triggers().evaluateFunction), 'Arn'] },
        [SCHEDULE_ENV.role]: { 'Fn::GetAtt': [logicalId(triggers().schedulerRole), 'Arn'] },
      });
      const statements = statementsOf(s, fn.role as IConstruct);
      const sync = statements.find((st) => actionsOf(st).includes('scheduler:CreateSchedule'));
      expect(actionsOf(sync).sort(), writer).toEqual([...SYNC_ACTIONS].sort());
      expect(JSON.stringify(sync.Resource)).toContain(`:schedule/${groupName()}/*`);
      // ListSchedules has no resource-level permission; CDK merges it with tracing's, also on '*'.
      const list = statements.filter((st) => actionsOf(st).includes('scheduler:ListSchedules'));
      expect(list.map((st) => st.Resource)).toEqual(['*']);
      expect(actionsOf(list[0]).filter((a) => !a.startsWith('xray:'))).toEqual(['scheduler:ListSchedules']);
      expect(statements.filter((st) => actionsOf(st).includes('iam:PassRole'))).toEqual([
        {
          Effect: 'Allow',
          Action: 'iam:PassRole',
          Resource: { 'Fn::GetAtt': [logicalId(triggers().schedulerRole), 'Arn'] },
          Condition: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
        },
      ]);
    }
    // No other API function may touch schedules or pass the role.
    for (const [name, fn] of Object.entries(s.stack.platform.api.functions)) {
      if ((WRITERS as readonly string[]).includes(name)) continue;
      const actions = statementsOf(s, fn.role as IConstruct).flatMap(actionsOf);
      expect(
        actions.filter((a) => a.startsWith('scheduler:') || a === 'iam:PassRole'),
        name,
      ).toEqual([]);
    }
  });

  it('lets POST /signals and POST /metrics, which evaluate, start persona switches', () => {
    const machine = logicalId(s.stack.platform.workflows.personaSwitch);
    for (const name of ['post-signal', 'post-metrics'] as const) {
      const fn = s.stack.platform.api.functions[name];
      const starts = statementsOf(s, fn.role as IConstruct).filter((st) =>
        actionsOf(st).includes('states:StartExecution'),
      );
      expect(
        starts.map((st) => st.Resource),
        name,
      ).toEqual([{ Ref: machine }]);
    }
  });

  it('passes cdk-nag’s AwsSolutions checks with nothing unacknowledged in the triggers or the writers', () => {
    const violations = new AwsSolutionsChecks(s.app).validateScope(s.app).violations;
    const ours = violations.filter((v) =>
      v.violatingResources.some(
        (r) =>
          r.constructPath?.includes('/PersonaTriggers/') ||
          WRITERS.some((w) =>
            r.constructPath?.includes(
              `/Api/${w.replace(/(^|-)(\w)/g, (_, _d, c: string) => c.toUpperCase())}`,
            ),
          ),
      ),
    );
    expect(
      ours.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`),
    ).toEqual([]);
  });
});

describe('PersonaPlatform with personaTriggers off', () => {
  it('builds no schedule group, rule or evaluate function, and tells the writers of no schedules', () => {
    const off = synthesize({ platform: { personaTriggers: false } });
    expect(off.stack.platform.personaTriggers).toBeUndefined();
    off.template.resourceCountIs('AWS::Scheduler::ScheduleGroup', 0);
    const rules = Object.values(off.template.findResources('AWS::Events::Rule'));
    expect(
      rules.filter((r) => JSON.stringify(r.Properties.EventPattern ?? null).includes('aws.cloudwatch')),
    ).toEqual([]);
    const functions = off.template.findResources('AWS::Lambda::Function');
    for (const writer of WRITERS) {
      expect(
        functions[logicalId(off.stack.platform.api.functions[writer])]?.Properties.Environment.Variables,
      ).not.toHaveProperty(SCHEDULE_ENV.group);
    }
    expect(JSON.stringify(off.template.toJSON())).not.toContain('persona-evaluate');
    expect(JSON.stringify(off.template.toJSON())).not.toContain('persona-sample');
    // Evaluation on signals and reports still starts switches.
    const machine = logicalId(off.stack.platform.workflows.personaSwitch);
    const starts = statementsOf(
      off,
      off.stack.platform.api.functions['post-signal'].role as IConstruct,
    ).filter((st) => actionsOf(st).includes('states:StartExecution'));
    expect(starts.map((st) => st.Resource)).toEqual([{ Ref: machine }]);
  });
});

describe('the functions that evaluate', () => {
  it('bundle without the switch task’s own dependencies (transports, ssh2 and its native add-ons)', async () => {
    for (const entry of [
      'functions/api/post-signal/handler.ts',
      'functions/api/post-metrics/handler.ts',
      'functions/events/persona-evaluate/handler.ts',
      // Every API function imports the shared runtime: it must not bring evaluation in.
      'functions/api/get-host/handler.ts',
    ]) {
      const out = await build({
        entryPoints: [entry],
        bundle: true,
        write: false,
        metafile: true,
        platform: 'node',
        format: 'esm',
        target: 'node22',
        mainFields: ['module', 'main'],
        external: ['@aws-sdk/*'],
        logLevel: 'silent',
      });
      const inputs = Object.keys(out.metafile.inputs);
      expect(
        inputs.filter((i) => i.includes('node_modules/ssh2/')),
        entry,
      ).toEqual([]);
      expect(
        inputs.filter((i) => i.endsWith('functions/shared/clone.ts')),
        entry,
      ).toEqual([]);
      const evaluates = inputs.some((i) => i.endsWith('core/persona/service.ts'));
      expect(evaluates, entry).toBe(!entry.includes('get-host'));
    }
  }, 120_000);
});
