import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyDelta } from '../../../core/delta/apply.js';
import { diff } from '../../../core/delta/diff.js';
import { ConflictError, InvalidInputError, TooLargeError } from '../../../core/errors.js';
import { translateIdentity } from '../../../core/plan/identity.js';
import { PLAN_MAX_BYTES, parsePlan, serializePlan } from '../../../core/plan/io.js';
import {
  buildPlan,
  checkPlanApplies,
  type Plan,
  TargetChangedError,
  targetFingerprint,
} from '../../../core/plan/plan.js';
import { parseProfile } from '../../../core/profile/io.js';
import { Profile } from '../../../core/profile/schema.js';
import { createProfile } from '../../../core/profile/service.js';
import type { ProfileRepository } from '../../../core/profile/store.js';
import type { Resolution } from '../../../core/resolver/resolve.js';
import { profilePairArb } from '../../support/arbitraries.js';
import { bareTarget, webSource } from './fixtures.js';

const now = () => new Date('2026-12-01T10:00:00.000Z');

function webPlan(extra: Partial<Parameters<typeof buildPlan>[0]> = {}): Plan {
  return buildPlan({
    source: { profile: webSource(), version: 3 },
    baseline: bareTarget(),
    address: 'ssh://root@10.0.0.3',
    now,
    ...extra,
  });
}

/** A saved plan edited by hand: `edit` changes the parsed JSON before it is read back. */
function edited(edit: (doc: Record<string, any>) => void): string {
  const doc = JSON.parse(serializePlan(webPlan()));
  edit(doc);
  return JSON.stringify(doc);
}

function refusal(text: string | Uint8Array): InvalidInputError {
  try {
    parsePlan(text, { source: 'web.plan.json' });
  } catch (e) {
    if (e instanceof InvalidInputError) return e;
    throw e;
  }
  throw new Error('the plan was accepted');
}

describe('buildPlan', () => {
  it('records the source and version, the target and its fingerprint, the Delta and when it was made', () => {
    const plan = webPlan();
    expect(plan.source).toEqual({ name: 'web', version: 3 });
    expect(plan.target.name).toBe('clone-1');
    expect(plan.target.address).toBe('ssh://root@10.0.0.3');
    expect(plan.target.fingerprint).toBe(targetFingerprint(bareTarget().spec));
    expect(plan.createdAt).toBe('2026-12-01T10:00:00.000Z');
    expect(plan.delta.from).toEqual({ name: 'clone-1' });
    expect(plan.delta.to).toEqual({ name: 'web', version: 3 });
    const keys = plan.delta.changes.map((c) => `${c.kind} ${c.key}`);
    expect(keys).toContain('package.install apt:nginx-light');
    expect(keys).toContain('route.add main default 10.0.0.1 eth0 100');
    expect(keys).toContain('route.remove main default 10.0.0.1 eth0 -');
    // Identity is never in the Delta: no host key, hostname or address of the source.
    expect(keys.filter((k) => /ssh_host|\/etc\/hostname|machine-id|ens5|172\.31\.16\.1/.test(k))).toEqual([]);
    expect(plan.unresolved.map((u) => u.reason)).toEqual([expect.stringMatching(/^\/etc\/hosts differs/)]);
  });

  it('fingerprints the target as its stored Profile version does (specHash)', async () => {
    const unused = () => Promise.reject(new Error('not used by createProfile'));
    const profiles: ProfileRepository = {
      getHead: async () => undefined,
      getVersion: unused,
      listHeads: unused,
      listVersions: unused,
      getBody: unused,
      putBody: async () => {},
      writeVersion: async () => {},
    };
    const { version } = await createProfile({ profiles }, bareTarget());
    expect(targetFingerprint(bareTarget().spec)).toBe(version.specHash);
  });

  it('lists unresolvable packages from the resolver, and what the caller adds, as unresolved', () => {
    const source = webSource();
    const pkg = source.spec.packages.find((p) => p.name === 'nginx-light');
    if (pkg === undefined) throw new Error('web.yaml has nginx-light');
    const resolutions: Resolution[] = [
      {
        package: pkg,
        field: 'packages[4]',
        status: 'unresolvable',
        reason: 'no version of nginx-light anywhere',
      },
    ];
    const plan = webPlan({
      resolutions,
      unresolved: [
        { kind: 'runtime', field: 'spec.runtimeDependencies[0]', reason: 'node 22.11.0 is a tarball' },
      ],
    });
    expect(plan.unresolved.slice(1)).toEqual([
      {
        kind: 'package',
        field: 'packages[4]',
        reason: `nginx-light ${pkg.version}: no version of nginx-light anywhere`,
      },
      { kind: 'runtime', field: 'spec.runtimeDependencies[0]', reason: 'node 22.11.0 is a tarball' },
    ]);
    expect(plan.resolution).toEqual([
      {
        field: 'packages[4]',
        package: pkg,
        status: 'unresolvable',
        reason: 'no version of nginx-light anywhere',
      },
    ]);
  });

  it('has an empty Delta when the target already is the source with its own identity', () => {
    const source = webSource();
    const cloned = Profile.parse({
      ...translateIdentity(source, bareTarget()).profile,
      metadata: { name: 'clone-1' },
    });
    const plan = buildPlan({ source: { profile: source }, baseline: cloned, now });
    expect(plan.delta.changes).toEqual([]);
    expect(plan.delta.summary).toEqual({ changes: 0, disruptive: 0, byKind: {} });
  });

  it('plans version 2 onto a clone of version 1 as the change between the versions, identity aside', () => {
    const v1 = parseProfile(readFileSync(new URL('../../../examples/web.yaml', import.meta.url)));
    const v2 = parseProfile(readFileSync(new URL('../../../examples/web-v2.yaml', import.meta.url)));
    const clone = Profile.parse({
      ...translateIdentity(v1, bareTarget()).profile,
      metadata: { name: 'clone-1' },
    });
    const plan = buildPlan({ source: { profile: v2, version: 2 }, baseline: clone, now });
    const keys = (changes: readonly { kind: string; key: string }[]) =>
      changes.map((c) => `${c.kind} ${c.key}`);
    expect(keys(plan.delta.changes)).toEqual(keys(diff(v1, v2).changes));
    expect(plan.unresolved).toEqual([]);
  });

  it('gives a Delta that turns the baseline into the translated source, and reads back equal (property)', () => {
    fc.assert(
      fc.property(
        profilePairArb,
        fc.constantFrom('json' as const, 'yaml' as const),
        ([source, baseline], format) => {
          const plan = buildPlan({ source: { profile: source, version: 1 }, baseline, now });
          const desired = translateIdentity(source, baseline).profile;
          expect(applyDelta(baseline, plan.delta).spec).toEqual(desired.spec);
          expect(parsePlan(serializePlan(plan, format))).toEqual(plan);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('serializePlan and parsePlan', () => {
  it.each(['json', 'yaml'] as const)('reads a plan saved as %s back equal', (format) => {
    const plan = webPlan();
    const text = serializePlan(plan, format);
    expect(parsePlan(text, { source: `web.plan.${format}` })).toEqual(plan);
    expect(parsePlan(Buffer.from(text))).toEqual(plan);
  });

  it('refuses an unknown field, naming it', () => {
    const e = refusal(
      edited((d) => {
        d.approvedBy = 'nobody';
        d.delta.changes[0].command = 'rm -rf /';
      }),
    );
    expect(e.issues.map((i) => `${i.path}: ${i.message}`)).toEqual(
      expect.arrayContaining(['approvedBy: unknown field', 'delta.changes[0].command: unknown field']),
    );
  });

  it('refuses a Change whose path is outside the grammar, naming the field', () => {
    const text = edited((d) => {
      const at = d.delta.changes.findIndex((c: { kind: string }) => c.kind === 'file.write');
      d.delta.changes[at].key = '/etc/../etc/shadow';
      d.delta.changes[at].to.path = '/etc/../etc/shadow';
      d.marker = at;
    });
    const at = JSON.parse(text).marker;
    const e = refusal(text.replace(/,"marker":\d+/, ''));
    expect(e.issues).toContainEqual(
      expect.objectContaining({
        path: `delta.changes[${at}].to.path`,
        message: expect.stringMatching(/^the path /),
      }),
    );
  });

  it('refuses a Change that does not start from the recorded baseline', () => {
    const e = refusal(
      edited((d) => {
        // The target's sshd_config is overwritten by the source's: claim it was something else.
        const at = d.delta.changes.findIndex((c: { key: string }) => c.key === '/etc/ssh/sshd_config');
        d.delta.changes[at].from.hash = `sha256:${'c'.repeat(64)}`;
      }),
    );
    expect(e.issues).toEqual([
      expect.objectContaining({
        path: expect.stringMatching(/^delta\.changes\[\d+\]$/),
        message: expect.stringMatching(/does not start from target\.baseline/),
      }),
    ]);
  });

  it("refuses a fingerprint that is not the recorded baseline's, and a summary that does not count the changes", () => {
    const e = refusal(
      edited((d) => {
        d.target.fingerprint = `sha256:${'0'.repeat(64)}`;
        d.delta.summary.changes += 1;
      }),
    );
    expect(e.issues.map((i) => i.path)).toEqual(['target.fingerprint', 'delta.summary']);
  });

  it('refuses a document larger than the limit before reading it', () => {
    const huge = `{"padding":"${'x'.repeat(PLAN_MAX_BYTES)}"}`;
    expect(() => parsePlan(huge)).toThrow(TooLargeError);
  });

  it('refuses forbidden keys and YAML tags, naming where', () => {
    const proto = refusal(edited((d) => d).replace('{"apiVersion"', '{"__proto__":{"x":1},"apiVersion"'));
    expect(proto.issues).toContainEqual(
      expect.objectContaining({ path: '__proto__', message: 'key "__proto__" is not allowed' }),
    );
    const yaml = serializePlan(webPlan(), 'yaml').replace('createdAt:', 'createdAt: !local');
    expect(refusal(yaml).issues[0]?.message).toMatch(/tag .* is not allowed/);
  });

  it('refuses a document that is not a plan at all', () => {
    const e = refusal(serializePlan(webPlan()).replace('"kind": "Plan"', '"kind": "Profile"'));
    expect(e.issues).toContainEqual(expect.objectContaining({ path: 'kind' }));
  });
});

describe('checkPlanApplies', () => {
  it('accepts a target that has not changed, whatever order its new capture lists things in', () => {
    const plan = webPlan();
    const target = bareTarget();
    const reordered = Profile.parse({
      ...target,
      spec: {
        ...target.spec,
        configuration: { ...target.spec.configuration, files: target.spec.configuration.files.toReversed() },
      },
    });
    expect(() => checkPlanApplies(plan, reordered)).not.toThrow();
    expect(() => checkPlanApplies(parsePlan(serializePlan(plan, 'yaml')), target)).not.toThrow();
  });

  it('refuses a target that changed since the plan was made, naming the change', () => {
    const plan = webPlan();
    const target = bareTarget();
    const changed = Profile.parse({
      ...target,
      spec: { ...target.spec, packages: [{ name: 'vim', version: '2:9.0.1378-2', manager: 'apt' }] },
    });
    let error: unknown;
    try {
      checkPlanApplies(plan, changed);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TargetChangedError);
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as TargetChangedError).code).toBe('CONFLICT');
    expect((error as Error).message).toBe(
      'target "clone-1" changed since the plan was made (1 change: package.install "apt:vim"); plan again',
    );
    expect((error as TargetChangedError).changes.map((c) => c.kind)).toEqual(['package.install']);
  });

  it('shows the first few changes and counts the rest', () => {
    const plan = webPlan();
    const target = bareTarget();
    const changed = Profile.parse({
      ...target,
      spec: {
        ...target.spec,
        configuration: {
          ...target.spec.configuration,
          sysctl: Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`net.test.k${i}`, '1'])),
        },
      },
    });
    expect(() => checkPlanApplies(plan, changed)).toThrow(
      /\(8 changes: sysctl\.set "net\.test\.k0", .*, sysctl\.set "net\.test\.k4", 3 more\)/,
    );
  });
});
