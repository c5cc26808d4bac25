// A test host made a host Persona manages, the two ways a user does it, for the tests whose
// subject comes after (switches, sampling, forecasts, morphs, recovery).
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { personaSwitchDeps } from '../../functions/shared/persona-switch.js';
import { morphDeps } from '../../functions/steps/morph/deps.js';
import type { TestHost } from '../hosts/harness.js';
import { type CliResult, runPersona } from './cli.js';
import { captureOverSsh, ended } from './clone.js';
import type { TestPersona } from './local.js';

/**
 * `persona capture ssh://… --key … --accept-new-host-key` as a user runs it (through `run`, the
 * built CLI by default), then the host key recorded with the registration as a first connection
 * that accepts it does: the runtime's own transports (switches, sampling) never accept a key
 * they were not given.
 */
export async function captureAndPin(
  api: Pick<TestPersona, 'url' | 'dataDir'>,
  host: TestHost,
  name: string,
  run: (...args: string[]) => Promise<CliResult> = (...args) => runPersona(api as TestPersona, ...args),
): Promise<void> {
  await captureOverSsh(run, host, name);
  const deps = await personaSwitchDeps();
  const first = await deps.transportFor((await deps.hosts.get(name)).registration, {
    acceptNewHostKey: true,
  });
  await first.run('true');
  await first.close();
}

/**
 * Registered through the API with its key sealed as the host's own secret (as `persona capture`
 * does), then captured by `POST /hosts/{host}/capture`, so that a task reaches it without
 * reading any file.
 */
export async function registerAndCapture(api: TestPersona, host: TestHost, name: string): Promise<void> {
  const deps = await morphDeps();
  const key = `${name}/credential/ssh`;
  const sealed = await (await deps.snapshots()).secrets.put(key, readFileSync(host.privateKeyPath));
  const registered = await api.call('POST', '/hosts', {
    body: {
      name,
      platform: 'baremetal',
      transport: 'ssh',
      address: host.address,
      credentialRef: { provider: 'local', key, digest: sealed.digest },
    },
  });
  expect(registered.status, JSON.stringify(registered.body)).toBe(201);
  const capture = await api.call('POST', `/hosts/${name}/capture`, { body: { acceptNewHostKey: true } });
  expect(capture.status, JSON.stringify(capture.body)).toBe(202);
  const captured = await ended(api, capture.body.id);
  expect(captured.status, JSON.stringify(captured.error)).toBe('SUCCEEDED');
}
