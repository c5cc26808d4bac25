import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CAPTURE_SCRIPT, captureEnv } from '../../../core/capture/script.js';
import { SENSITIVE_FILE_GLOBS } from '../../../core/capture/secrets.js';
import { parseSections } from '../../../core/capture/sections.js';
import { InvalidInputError } from '../../../core/errors.js';

describe('CAPTURE_SCRIPT', () => {
  it('is a POSIX sh program that sh accepts', () => {
    const check = spawnSync('sh', ['-n'], { input: CAPTURE_SCRIPT, encoding: 'utf8' });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('has its shell expansions written out and no template left in it', () => {
    expect(CAPTURE_SCRIPT).not.toContain('\\${');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template
    expect(CAPTURE_SCRIPT).toContain('${PERSONA_NONCE:-}');
    expect(CAPTURE_SCRIPT).not.toMatch(/\bset -e\b/);
  });

  it('leaves every credential-looking file name out of hashing', () => {
    for (const g of SENSITIVE_FILE_GLOBS) {
      expect(CAPTURE_SCRIPT).toContain(`! ${g.ci ? '-iname' : '-name'} '${g.glob}'`);
    }
  });

  it('never reads file content it does not need, nor /etc/shadow beyond its first two fields', () => {
    expect(CAPTURE_SCRIPT).toContain('cut -d: -f1,2 /etc/shadow');
    expect(CAPTURE_SCRIPT).not.toMatch(/cat [^\n|]*shadow/);
  });
});

describe('the usage sample', () => {
  const runScript = (env: Record<string, string>) =>
    spawnSync('sh', ['-s'], {
      input: CAPTURE_SCRIPT,
      env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin', ...env },
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });

  it("spans the script's run, at least a tenth of a second, and is not taken for a capture of state only", () => {
    const sampled = runScript(captureEnv({}));
    expect(sampled.status).toBe(0);
    const sections = parseSections(sampled.stdout);
    const first = Number(sections.get('sample-start')?.parts[0]?.text.split(' ')[0]);
    const last = Number(sections.get('sample-end')?.parts[0]?.text.split(' ')[0]);
    // The readings are hundredths of a second; sections' times are rounded to them, so is the
    // window (a window of exactly ten ticks subtracts to 0.0999… in floating point).
    const window = Math.round((last - first) * 100) / 100;
    expect(window).toBeGreaterThanOrEqual(0.1);
    // Every other section, those in the background too, ran between the two readings.
    for (const s of sections.values()) {
      if (s.name === 'sample-start' || s.name === 'sample-end' || s.name === 'loadavg') continue;
      expect(s.seconds ?? 0, s.name).toBeLessThanOrEqual(window);
    }
    const env = captureEnv({ usageSample: false });
    expect(env.PERSONA_SAMPLE).toBe('0');
    const state = runScript(env);
    expect(state.status).toBe(0);
    expect(state.stdout).not.toContain('sample-start');
    expect(state.stdout).not.toContain('sample-end');
    // The rest of the capture is there all the same.
    expect(state.stdout).toContain('sysctl');
    expect(captureEnv({ usageSample: true }).PERSONA_SAMPLE).toBeUndefined();
  });
});

describe('captureEnv', () => {
  it('passes the application and a fresh nonce to the script', () => {
    const a = captureEnv({
      appProcesses: ['nginx', 'node'],
      configPaths: ['/srv/app'],
      hashBudgetBytes: 1024,
    });
    const b = captureEnv({});
    expect(a).toMatchObject({
      PERSONA_APP_PROCESSES: 'nginx\nnode',
      PERSONA_CONFIG_PATHS: '/srv/app',
      PERSONA_HASH_BUDGET_BYTES: '1024',
    });
    expect(a.PERSONA_NONCE).toMatch(/^[0-9a-f]{32}$/);
    expect(b.PERSONA_NONCE).not.toBe(a.PERSONA_NONCE);
  });

  it('passes names and paths with spaces, quotes and wildcards whole, one a line', () => {
    const env = captureEnv({
      appProcesses: ['Web Content', "it's"],
      configPaths: ['/srv/my app', '/srv/$(reboot)', "/srv/it's", '/srv/*'],
    });
    expect(env.PERSONA_APP_PROCESSES?.split('\n')).toEqual(['Web Content', "it's"]);
    expect(env.PERSONA_CONFIG_PATHS?.split('\n')).toEqual([
      '/srv/my app',
      '/srv/$(reboot)',
      "/srv/it's",
      '/srv/*',
    ]);
  });

  it('refuses names and paths that would make two items or an option, naming each', () => {
    try {
      captureEnv({
        appProcesses: ['nginx\nsshd', ''],
        configPaths: ['relative/path', '/-rf', '/srv/a\nb', '/srv/../etc'],
        maxFiles: 0,
      });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidInputError);
      const issues = (e as InvalidInputError).issues;
      expect(issues.map((i) => i.path)).toEqual([
        'appProcesses[0]',
        'appProcesses[1]',
        'configPaths[0]',
        'configPaths[1]',
        'configPaths[2]',
        'configPaths[3]',
        'maxFiles',
      ]);
      // The value is shown escaped: a newline in it cannot start a line of its own.
      expect(issues[0]?.message).toContain('"nginx\\nsshd"');
    }
  });
});
