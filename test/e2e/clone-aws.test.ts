// A clone to "AWS", end to end: the Debian web host captured over SSH is cloned with
// `persona clone web --to aws --subnet … --instance-profile …` through the clone workflow (the
// ASL executed by the embedded runtime), the real EC2 adaptor and SDK clients pointed by the
// SDK's own AWS_ENDPOINT_URL_* at the EC2 and SSM stand-ins, whose instance is a real test host
// reached over SSM only. Validation passes against the source; the instance carries the
// operation's tag and a type the capacity fallback chose. A clone cancelled after its instance
// came up ends ROLLED_BACK with the instance terminated and its host gone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ec2Arch, instanceTypeCandidates } from '../../core/platform/ec2-types.js';
import { shapeOf } from '../../core/platform/shape.js';
import type { Profile } from '../../core/profile/schema.js';
import { SSM_OUTPUT_BUCKET } from '../../core/storage/definitions.js';
import { EC2_PREFERRED_TYPES_ENV } from '../../functions/shared/clone.js';
import { LOCAL_BUCKET } from '../../local/runtime.js';
import { LOCAL_CREDENTIALS } from '../../local/stand-ins.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { setUpWebHost } from '../hosts/software.js';
import { type Ec2StandIn, startEc2StandIn } from '../stand-ins/ec2.js';
import { type SsmStandIn, startSsmStandIn } from '../stand-ins/ssm.js';
import { runPersona } from '../support/cli.js';
import { captureWebSource, ended, lastClone, untilWorkingOnTarget } from '../support/clone.js';
import { eventsWith, startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;
let ssm: SsmStandIn;
let ec2: Ec2StandIn;
let web: TestHost;

const persona = (...args: string[]) => runPersona(api, ...args);
const PAGE = '<h1>shop in the cloud</h1>\n';
/** Large enough for any source of this machine (2 cores, 24 GiB). */
const FALLBACK = 'm7i.4xlarge';

beforeAll(async () => {
  api = await startTestPersona();
  ssm = await startSsmStandIn({
    s3: { endpoint: api.s3Endpoint, credentials: LOCAL_CREDENTIALS },
    // Fast enough for a test: the service itself answers in about this time.
    invisiblePolls: 1,
  });
  ec2 = await startEc2StandIn({ ssm });
  // How a user points the SDK at other endpoints; the embedded runtime reaches EC2 and SSM only so.
  process.env.AWS_ENDPOINT_URL_EC2 = ec2.endpoint;
  process.env.AWS_ENDPOINT_URL_SSM = ssm.endpoint;
  // Command output over SSM's inline limits (a capture's) comes back through the data bucket.
  process.env[SSM_OUTPUT_BUCKET.env] = LOCAL_BUCKET;
  // The deployer's fallback after the mapped type.
  process.env[EC2_PREFERRED_TYPES_ENV] = FALLBACK;
  web = await createHost({
    name: 'aweb',
    hostname: 'web-aws',
    setup: (h) => setUpWebHost(h, { page: PAGE, secret: 'hunter2-in-aws' }),
  });
  await captureWebSource(api, web);
}, 900_000);

afterAll(async () => {
  await ec2?.stop();
  await ssm?.stop();
  await destroyAllHosts();
  await api?.stop();
  delete process.env.AWS_ENDPOINT_URL_EC2;
  delete process.env.AWS_ENDPOINT_URL_SSM;
  delete process.env[SSM_OUTPUT_BUCKET.env];
  delete process.env[EC2_PREFERRED_TYPES_ENV];
}, 180_000);

const lastOperation = () => lastClone(api);

describe('persona clone --to aws', () => {
  it('launches a tagged, encrypted, IMDSv2 instance, clones onto it over SSM and validates it against the source', async () => {
    const source = (await api.call('GET', '/profiles/web')).body.profile as Profile;
    const shape = shapeOf(source);
    const [first, second] = instanceTypeCandidates({
      arch: ec2Arch(shape.arch) ?? 'x86_64',
      ...(shape.cpus === undefined ? {} : { cpus: shape.cpus }),
      ...(shape.memoryBytes === undefined ? {} : { memoryBytes: shape.memoryBytes }),
      preferred: [FALLBACK],
    });
    expect(second).toBe(FALLBACK);
    // No capacity for the type the source maps to: the next one is launched.
    ec2.capacity(first as string);
    const r = await persona(
      'clone',
      'web',
      '--to',
      'aws',
      '--subnet',
      ec2.vpc.subnetId,
      '--instance-profile',
      'persona-ssm',
      '--tag',
      'team=platform',
    );
    const op = await lastOperation();
    expect(op.status, `${r.stderr}\n${r.stdout}\n${JSON.stringify(op.error)}`).toBe('SUCCEEDED');
    expect(r.stdout).toMatch(/validation passed/);
    const [instance] = [...ec2.instances.values()];
    expect(instance?.state).toBe('running');
    expect(instance?.instanceType).toBe(second);
    expect(instance?.tags.get('persona:operation')).toBe(op.id);
    expect(instance?.tags.get('team')).toBe('platform');
    expect(instance?.metadataOptions.httpTokens).toBe('required');
    expect(instance?.volumes.every((v) => v.encrypted)).toBe(true);
    expect(instance?.iamInstanceProfile).toMatch(/instance-profile\/persona-ssm$/);
    // Reached over SSM only: every command on the clone went through SendCommand.
    const onClone = ssm.executions.filter((e) => e.instanceId === instance?.instanceId);
    expect(onClone.length).toBeGreaterThan(10);
    // The clone serves what the source serves, from its own address.
    const host = instance?.host as NonNullable<typeof instance>['host'];
    const page = await host?.exec(`curl -s --max-time 5 http://${instance?.privateIp}/`);
    expect(page?.stdout).toBe(PAGE);
    // Registered as a host reached over SSM, named for the operation.
    const target = { host: op.result?.target as string };
    const registered = (await api.call('GET', `/hosts/${target.host}`)).body;
    expect(registered.registration).toMatchObject({
      platform: 'aws',
      transport: 'ssm',
      instanceId: instance?.instanceId,
    });
    expect(op.result?.differences, JSON.stringify(op.result)).toBe(0);
    expect(await eventsWith(api, 'Clone Succeeded')).toContain('"Clone Succeeded"');
  }, 900_000);

  it('terminates the instance it launched when the clone is stopped after provisioning, and ends ROLLED_BACK', async () => {
    const started = await api.call('POST', '/operations/clone', {
      headers: { 'idempotency-key': 'aws-cancelled' },
      body: {
        profile: { name: 'web' },
        target: { kind: 'aws', subnet: ec2.vpc.subnetId, instanceProfile: 'persona-ssm' },
      },
    });
    expect(started.status).toBe(202);
    const id = started.body.id as string;
    // Stopped once the instance is up and the clone works on it.
    await untilWorkingOnTarget(api, id);
    const launched = [...ec2.instances.values()].find((i) => i.tags.get('persona:operation') === id);
    expect(launched?.state).toBe('running');
    expect((await api.call('POST', `/operations/${id}/cancel`)).status).toBe(202);
    const op = await ended(api, id);
    expect(op.status, JSON.stringify(op.error)).toBe('ROLLED_BACK');
    const rollback = (await api.call('GET', `/operations/${id}/documents/rollback`)).body;
    expect(rollback.terminated).toBe(true);
    await ec2.idle();
    expect(launched?.state).toBe('terminated');
    expect(launched?.host).toBeUndefined();
    // The security group made for the clone went with it.
    expect([...ec2.securityGroups.values()].filter((g) => g.tags.get('persona:operation') === id)).toEqual(
      [],
    );
    expect(await eventsWith(api, 'Clone Rolled Back')).toContain('"Clone Rolled Back"');
  }, 900_000);
});
