// The capture script run for real on this machine through the local transport.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureHost, type HostCapture } from '../../../core/capture/collect.js';
import { UnsupportedHostError } from '../../../core/capture/errors.js';
import { CAPTURE_SCRIPT } from '../../../core/capture/script.js';
import { parseSections } from '../../../core/capture/sections.js';
import { validateProfile } from '../../../core/profile/io.js';
import { LocalTransport } from '../../../core/transport/local.js';

const SECRET = 'hunter2';

describe('captureHost on this machine through the local transport', () => {
  // A copy of sleep under a name of its own: the application's environment is read from the
  // oldest process of that name, and other sleeps on a shared machine must not stand in for it.
  const dir = mkdtempSync(join(tmpdir(), 'persona-capture-'));
  const appName = `psleep-${randomBytes(3).toString('hex')}`;
  let app: ChildProcess;
  let capture: HostCapture;
  let elapsedMs: number;

  beforeAll(async () => {
    copyFileSync('/bin/sleep', join(dir, appName));
    app = spawn(join(dir, appName), ['120'], {
      env: { PATH: '/usr/bin:/bin', DB_PASSWORD: SECRET, APP_MODE: 'integration' },
      stdio: 'ignore',
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    capture = await captureHost(new LocalTransport(), {
      name: 'local-host',
      capturedAt: new Date().toISOString(),
      application: { name: 'sleeper', processes: [appName], paths: [dir] },
      // What this machine's own servers run from (a shared checkout) is not this test's to walk:
      // discovery is tested on test hosts, where nothing else runs (discovery.host.test.ts).
      discovery: { enabled: false },
    });
    elapsedMs = performance.now() - started;
  });

  afterAll(() => {
    app?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  // How fast is the capture benchmark's to say (npm run bench:capture), not a test's on a shared
  // machine: this one checks that the run is timed, and that the usage window it names is the run's.
  it('reports how long its script ran on the host, and the usage window within it', () => {
    const window = capture.profile.observed?.usage?.window;
    expect(window?.source).toBe('capture');
    expect(window?.seconds).toBeGreaterThanOrEqual(0.1);
    expect(capture.scriptSeconds).toBeGreaterThanOrEqual((window?.seconds ?? 0) - 0.01);
    expect(elapsedMs).toBeGreaterThanOrEqual((capture.scriptSeconds ?? 0) * 1000 - 50);
  });

  it('produces a Profile that validates', () => {
    expect(() => validateProfile(capture.profile)).not.toThrow();
  });

  it('reads the distribution from /etc/os-release and the kernel from uname', () => {
    const osRelease = readFileSync('/etc/os-release', 'utf8');
    const field = (name: string) => new RegExp(`^${name}="?([^"\\n]*)"?$`, 'm').exec(osRelease)?.[1];
    const os = capture.profile.spec.os;
    expect(os.distribution).toBe(field('ID'));
    expect(os.version).toBe(field('VERSION_ID'));
    expect(os.kernel).toBe(execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim());
  });

  it('lists as many packages as dpkg says are installed', () => {
    // Installed, not merely known: `dpkg-query -W | wc -l` also counts removed packages whose
    // configuration remains ("rc"); on a host with none, the two counts are the same.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
    const statuses = execFileSync('dpkg-query', ['-W', '-f=${db:Status-Abbrev}\\n'], { encoding: 'utf8' })
      .split('\n')
      .filter((s) => s !== '');
    const installed = statuses.filter((s) => s[1] === 'i').length;
    expect(capture.profile.spec.packages).toHaveLength(installed);
  });

  it('keeps the application’s password as a secret reference and nowhere in clear', () => {
    const env = capture.profile.spec.configuration?.env ?? [];
    expect(env.find((e) => e.scope === appName && e.name === 'DB_PASSWORD')).toEqual({
      name: 'DB_PASSWORD',
      scope: appName,
      sensitive: true,
      secretRef: {
        provider: 'local',
        key: expect.stringMatching(new RegExp(`/env/${appName}/DB_PASSWORD$`)),
      },
    });
    expect(env.find((e) => e.scope === appName && e.name === 'APP_MODE')?.value).toBe('integration');
    expect(JSON.stringify(capture.profile)).not.toContain(SECRET);
    expect(JSON.stringify(capture.unknowns)).not.toContain(SECRET);
    expect(capture.secrets.find((s) => s.source === `${appName}/DB_PASSWORD`)?.value).toBe(SECRET);
  });

  it('lists the application’s files and its process, but not the capture’s own processes', () => {
    const files = capture.profile.spec.configuration?.files ?? [];
    expect(files.find((f) => f.path === join(dir, appName))).toMatchObject({
      type: 'file',
      hash: expect.stringMatching(/^sha256:/),
    });
    const processes = capture.profile.spec.processes ?? [];
    expect(processes.find((p) => p.name === appName)?.command).toBe(`${join(dir, appName)} 120`);
    expect(capture.profile.spec.application?.startCommands).toEqual([
      expect.objectContaining({ name: appName, command: `${join(dir, appName)} 120` }),
    ]);
  });
});

describe('the capture script on a host that is not Linux', () => {
  it('prints the unsupported marker, which the parser turns into a clear error', () => {
    // A private mount namespace in which uname says Darwin; the machine's uname is untouched.
    const dir = mkdtempSync(join(tmpdir(), 'persona-uname-'));
    try {
      const fake = join(dir, 'uname');
      writeFileSync(fake, '#!/bin/sh\nif [ "$1" = -s ]; then echo Darwin; else echo 23.1.0; fi\n');
      chmodSync(fake, 0o755);
      const script = join(dir, 'capture.sh');
      writeFileSync(script, CAPTURE_SCRIPT);
      const uname = execFileSync('sh', ['-c', 'readlink -f "$(command -v uname)"'], {
        encoding: 'utf8',
      }).trim();
      const output = execFileSync(
        'unshare',
        ['-m', 'sh', '-c', `mount --bind ${fake} ${uname} && exec sh ${script}`],
        {
          encoding: 'utf8',
        },
      );
      expect(() => parseSections(output)).toThrow(UnsupportedHostError);
      expect(() => parseSections(output)).toThrow(
        'the host runs Darwin, not Linux: Persona captures Linux hosts only',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the script on its way to the host', () => {
  /** The local transport, recording what is sent; `noGzip` answers the unpacker as a host without gzip would. */
  function recording(noGzip: boolean) {
    const local = new LocalTransport();
    const sent: { command: string; stdinBytes: number }[] = [];
    const transport = {
      target: local.target,
      sent,
      async run(command: string, options: Parameters<LocalTransport['run']>[1] = {}) {
        const stdin = options.stdin;
        sent.push({ command, stdinBytes: stdin === undefined ? 0 : Buffer.byteLength(stdin) });
        if (noGzip && command.startsWith('command -v gzip'))
          return local.run('command -v no-such-gzip-here >/dev/null 2>&1 || exit 97', options);
        return local.run(command, options);
      },
      stream: local.stream.bind(local),
      putFile: local.putFile.bind(local),
      getFile: local.getFile.bind(local),
      close: local.close.bind(local),
    };
    return transport;
  }
  const options = {
    name: 'local-host',
    capturedAt: new Date().toISOString(),
    discovery: { enabled: false },
    params: { usageSample: false },
  } as const;

  it('goes compressed on standard input, not as a 40 KiB command line', async () => {
    const transport = recording(false);
    const capture = await captureHost(transport, options);
    expect(() => validateProfile(capture.profile)).not.toThrow();
    expect(transport.sent).toHaveLength(1);
    const [only] = transport.sent;
    expect(only?.command.length).toBeLessThan(200);
    expect(only?.stdinBytes).toBeLessThan(CAPTURE_SCRIPT.length / 3);
  });

  it('goes as it is to a host without gzip', async () => {
    const transport = recording(true);
    const capture = await captureHost(transport, options);
    expect(() => validateProfile(capture.profile)).not.toThrow();
    expect(transport.sent.map((s) => s.command === CAPTURE_SCRIPT)).toEqual([false, true]);
  });
});
