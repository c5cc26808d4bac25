// Faults injected into a clone at every step and inside Apply and Start (a command that fails,
// the transport cut, the control side lost mid-apply and the rollback resumed by a fresh one):
// whatever happens, the target ends exactly as its baseline capture says it was, and the
// operation ends ROLLED_BACK naming the step. The steps run as the workflow runs them, through
// the clone task's own dependencies in the embedded runtime, with the target's transport and
// the journal wrapped to fail on cue.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureHost } from '../../core/capture/collect.js';
import { CLONE_STEPS, CloneRequest } from '../../core/clone/request.js';
import { type CloneDeps, rollbackClone, runCloneStep, startClone } from '../../core/clone/workflow.js';
import { diff } from '../../core/delta/diff.js';
import type { Journal } from '../../core/orchestrator/journal.js';
import { targetFingerprint } from '../../core/plan/plan.js';
import { canonicalSpec } from '../../core/profile/collections.js';
import { validateProfile } from '../../core/profile/io.js';
import type { Profile } from '../../core/profile/schema.js';
import { TransportError } from '../../core/transport/errors.js';
import type { Transport } from '../../core/transport/transport.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { addUser, setSysctl, writeEnvironmentFile } from '../hosts/software.js';
import { sshTransportTo } from '../hosts/transport.js';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;
let source: TestHost;
let base: CloneDeps;
let targets = 0;

beforeAll(async () => {
  api = await startTestPersona();
  [source] = await Promise.all([
    createHost({
      name: 'fsrc',
      hostname: 'src-a',
      setup: async (h) => {
        await addUser(h, 'shop', { uid: 1001 });
        await writeEnvironmentFile(h, '/etc/default/shop-api', { PORT: '8080' });
        await setSysctl(h, 'net.ipv4.ip_forward', 1);
        await h.run(
          'mkdir -p /etc/shop && printf "listen 8080\\n" > /etc/shop/app.conf && ln -s app.conf /etc/shop/current',
        );
      },
    }),
  ]);
  const captured = await runPersona(
    api,
    'capture',
    `ssh://root@${source.address}`,
    '--key',
    source.privateKeyPath,
    '--name',
    'src',
    '--accept-new-host-key',
  );
  expect(captured.code, captured.stderr).toBe(0);
  const { cloneDeps } = await import('../../functions/shared/clone.js');
  base = await cloneDeps();
}, 900_000);

afterAll(async () => {
  await destroyAllHosts();
  await api?.stop();
}, 120_000);

/** A fresh bare target, registered: each case starts from its own. */
async function freshTarget(): Promise<{ host: TestHost; name: string }> {
  const name = `tgt-${++targets}`;
  const host = await createHost({ name: `f${targets}`, hostname: name });
  const file = join(api.dataDir, `${name}.host.json`);
  writeFileSync(
    file,
    JSON.stringify({ name, platform: 'baremetal', transport: 'ssh', address: host.address }),
  );
  const added = await runPersona(api, 'hosts', 'add', '-f', file, '--key', host.privateKeyPath);
  expect(added.code, added.stderr).toBe(0);
  return { host, name };
}

/** The target as a capture sees it: what "exactly as it was" is checked against. */
async function captureTarget(target: TestHost): Promise<Profile> {
  const t = sshTransportTo(target);
  try {
    const c = await captureHost(t, { name: 'target', capturedAt: new Date().toISOString() });
    return validateProfile(c.profile);
  } finally {
    await t.close();
  }
}

/** What differs between two captures of the target, named, so that a failure says what it is. */
function differences(before: Profile, after: Profile): string[] {
  if (targetFingerprint(before.spec) === targetFingerprint(after.spec)) return [];
  const named = diff(before, after).changes.map(
    (c) => `${c.kind} ${JSON.stringify(c.key)}: ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`,
  );
  if (named.length > 0) return named;
  const a = canonicalSpec(before.spec) as unknown as Record<string, unknown>;
  const b = canonicalSpec(after.spec) as unknown as Record<string, unknown>;
  return [...new Set([...Object.keys(a), ...Object.keys(b)])]
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => `spec.${k}: ${JSON.stringify(a[k])} -> ${JSON.stringify(b[k])}`);
}

/** The target once two reads in a row agree: what "as it was" means. */
async function settledCapture(target: TestHost): Promise<Profile> {
  let last = await captureTarget(target);
  for (let attempt = 0; attempt < 3; attempt++) {
    const next = await captureTarget(target);
    if (differences(last, next).length === 0) return next;
    last = next;
  }
  return last;
}

/**
 * What still differs once the target has settled: read again, a few seconds apart, while it
 * differs. Once, on a loaded machine, a read right after the rollback differed from the baseline
 * though the rollback's own read did not; what passes goes by the next read, and a change the
 * rollback missed stays.
 */
async function settledDifferences(before: Profile, target: TestHost): Promise<string[]> {
  let found: string[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 2000));
    found = differences(before, await captureTarget(target));
    if (found.length === 0) return found;
  }
  return found;
}

type Fault = 'command-fails' | 'transport-cut' | 'control-side-lost';

interface Injection {
  /** Armed when this step starts; the fault strikes at the `at`-th host command of the step. */
  readonly step: (typeof CLONE_STEPS)[number];
  readonly at: number;
  readonly fault: Fault;
}

/** The clone task's dependencies with the target's transport and the journal failing on cue. */
function faulty(
  injection: Injection,
  targetName: string,
): { deps: CloneDeps; arm(step: string): void; struck(): boolean } {
  let armed = false;
  let count = 0;
  let struck = false;
  let lost = false;
  const strike = (what: string): boolean => {
    if (lost) throw new Error('the control side is gone');
    if (!armed) return false;
    count++;
    if (count < injection.at) return false;
    if (injection.fault === 'command-fails' && count > injection.at) return false;
    struck = true;
    if (injection.fault === 'control-side-lost') lost = true;
    // A command that fails says so by its exit status; anything else fails as a dropped link.
    if (injection.fault === 'command-fails' && what === 'a command') return true;

    throw new TransportError(`injected: the connection dropped during ${what}`, 'disconnected', 'injected');
  };
  const wrap = (t: Transport): Transport => ({
    target: t.target,
    run: async (command, options) => {
      if (strike('a command'))
        return { exitCode: 126, stdout: '', stderr: 'injected: the command could not run', durationMs: 0 };
      return t.run(command, options);
    },
    stream: async (command, options) => {
      strike('a stream');
      return t.stream(command, options);
    },
    putFile: async (path, content, options) => {
      strike('a file write');
      return t.putFile(path, content, options);
    },
    getFile: async (path) => {
      strike('a file read');
      return t.getFile(path);
    },
    close: () => t.close(),
  });
  // A control side that is gone writes nothing more to its journal either.
  const journal: Journal = new Proxy(base.journal, {
    get(j, key) {
      const value = Reflect.get(j, key, j);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (lost) return Promise.reject(new Error('the control side is gone'));
        return (value as (...a: unknown[]) => unknown).apply(j, args);
      };
    },
  });
  return {
    deps: {
      ...base,
      journal,
      transportFor: async (host, options) => {
        const t = await base.transportFor(host, options);
        return host.name === targetName ? wrap(t) : t;
      },
    },
    arm(step) {
      armed = step === injection.step;
      count = 0;
    },
    struck: () => struck,
  };
}

/** Runs the steps as the state machine does: in order, and Rollback on the first failure. */
async function runClone(injection: Injection, targetName: string): Promise<{ id: string; struck: boolean }> {
  const id = randomUUID();
  const { deps, arm, struck } = faulty(injection, targetName);
  const request = CloneRequest.parse({
    profile: { name: 'src' },
    target: { kind: 'host', host: targetName },
    acceptNewHostKey: true,
    validation: { healthChecks: true },
  });
  await startClone(deps, id, request);
  for (const step of CLONE_STEPS) {
    arm(step);
    try {
      await runCloneStep(deps, id, step);
    } catch (e) {
      // A lost control side's rollback is run by the next one, from the journal alone.
      const rollbackDeps = injection.fault === 'control-side-lost' ? base : deps;
      arm('none');
      await rollbackClone(rollbackDeps, id, { Error: 'TRANSPORT', Cause: (e as Error).message });
      break;
    }
  }
  return { id, struck: struck() };
}

describe('clone faults', () => {
  const cases: Injection[] = [
    { step: 'baseline', at: 1, fault: 'transport-cut' },
    { step: 'plan', at: 1, fault: 'command-fails' },
    ...[1, 3, 8, 15, 25, 40].map((at): Injection => ({ step: 'apply', at, fault: 'command-fails' })),
    ...[2, 12, 30].map((at): Injection => ({ step: 'apply', at, fault: 'transport-cut' })),
    ...[5, 20].map((at): Injection => ({ step: 'apply', at, fault: 'control-side-lost' })),
    { step: 'verify', at: 1, fault: 'transport-cut' },
    // Record's first command is the state fingerprint, whose failure only costs the next
    // re-clone a capture; its second is the capture of the clone.
    { step: 'record', at: 2, fault: 'command-fails' },
  ];

  for (const injection of cases) {
    it(`${injection.fault} at command ${injection.at} of ${injection.step}: ROLLED_BACK, target as it was`, async () => {
      const target = await freshTarget();
      const baseline = await settledCapture(target.host);
      const { id, struck } = await runClone(injection, target.name);
      const op = await base.operations.get(id);
      // Every case's point lies within its step: a fault that never struck tested nothing.
      expect(struck, `the fault never struck; the clone ended ${op.status}`).toBe(true);
      expect(op.status, JSON.stringify(op.error)).toBe('ROLLED_BACK');
      expect(op.error?.step).toBe(injection.step);
      const rollback = await base.documents.get<{ verified: boolean | string; reverted: number }>(
        id,
        'rollback',
      );
      expect(rollback.verified, JSON.stringify(rollback)).toBe(
        injection.step === 'baseline' || injection.step === 'plan' ? 'not-needed' : true,
      );
      expect(await settledDifferences(baseline, target.host)).toEqual([]);
    }, 300_000);
  }

  it('a clone that goes through is the source but for its identity', async () => {
    const target = await freshTarget();
    const { id } = await runClone({ step: 'record', at: 10_000, fault: 'command-fails' }, target.name);
    const op = await base.operations.get(id);
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(op.result?.differences, JSON.stringify(op.result?.differencesShown)).toBe(0);
    expect((await target.host.exec('id -u shop')).stdout.trim()).toBe('1001');
    expect((await target.host.exec('readlink /etc/shop/current')).stdout.trim()).toBe('app.conf');
  }, 300_000);
});
