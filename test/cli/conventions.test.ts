// How the built `persona` command starts and prints: only the code of the command given is
// loaded, colours only on a terminal, and a completion script the shell accepts.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const base = { ...process.env };
    delete base.NO_COLOR;
    delete base.FORCE_COLOR;
    delete base.CI;
    execFile(command, args, { env: { ...base, ...env }, timeout: 50_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
const persona = (args: string[], env: Record<string, string | undefined> = {}) =>
  run(process.execPath, ['cli/bin.js', ...args], env);

/** The sources and packages whose code a `persona ARGS` process loaded, by the build's metafile. */
async function loadedInputs(args: string[]): Promise<{ run: Run; urls: string[]; inputs: string[] }> {
  const file = join(mkdtempSync(join(tmpdir(), 'persona-loads-')), 'loads');
  const r = await run(
    process.execPath,
    ['--import', './test/cli/fixtures/record-loads.mjs', 'cli/bin.js', ...args],
    {
      PERSONA_LOADS: file,
    },
  );
  const urls = readFileSync(file, 'utf8').trim().split('\n');
  const meta = JSON.parse(readFileSync('cli/dist/meta.json', 'utf8')) as {
    outputs: Record<string, { inputs: Record<string, unknown> }>;
  };
  const root = new URL('../../', import.meta.url).href;
  const inputs = urls.flatMap((u) => {
    const rel = u.startsWith(root) ? u.slice(root.length) : u;
    return meta.outputs[rel] ? Object.keys(meta.outputs[rel].inputs) : rel.startsWith('node:') ? [] : [rel];
  });
  return { run: r, urls, inputs };
}

const HEAVY = /node_modules\/(@aws-sdk|@smithy|ssh2|cpu-features|tsx)\//;

describe('start-up', () => {
  it('answers --version from package.json, loading neither the AWS SDK, ssh2, zod nor YAML', async () => {
    const { run: r, urls, inputs } = await loadedInputs(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${JSON.parse(readFileSync('package.json', 'utf8')).version}\n`);
    expect(urls.some((u) => u.endsWith('/cli/dist/persona.mjs'))).toBe(true);
    expect(inputs.filter((i) => HEAVY.test(i) || /node_modules\/(zod|yaml)\//.test(i))).toEqual([]);
    expect(inputs).toContain('node_modules/commander/lib/command.js');
  });

  it('validates a file with the profile parser and no AWS SDK, ssh2 or tsx', async () => {
    const { run: r, inputs } = await loadedInputs(['validate', 'examples/web.yaml']);
    expect(r.code).toBe(0);
    expect(inputs).toContain('core/profile/io.ts');
    expect(inputs.filter((i) => HEAVY.test(i))).toEqual([]);
    expect(inputs).toContain('cli/profiles.ts');
    for (const other of [
      'capture',
      'clone',
      'snapshot',
      'personas',
      'agent',
      'connect',
      'sigv4',
      'completion',
    ])
      expect(inputs).not.toContain(`cli/${other}.ts`);
  });

  it('talks to the API for `hosts list` without loading ssh2 or the AWS SDK (loaded by `capture` alone)', async () => {
    const { run: r, inputs } = await loadedInputs([
      '--endpoint',
      'http://127.0.0.1:1',
      '--retries',
      '0',
      'hosts',
      'list',
    ]);
    expect(r.code).toBe(6);
    expect(inputs).toContain('cli/capture.ts');
    expect(inputs.filter((i) => HEAVY.test(i))).toEqual([]);
  });

  it('lists every command in --help without loading them, and `help COMMAND` loads that one', async () => {
    const help = await loadedInputs(['--help']);
    expect(help.run.code).toBe(0);
    for (const name of [
      'validate',
      'profiles',
      'snapshot',
      'capture',
      'hosts',
      'operations',
      'plan',
      'clone',
      'pools',
      'personas',
      'agent',
      'completion',
    ])
      expect(help.run.stdout).toMatch(new RegExp(`\\n  ${name}\\b`));
    expect(help.inputs.filter((i) => HEAVY.test(i))).toEqual([]);
    const sub = await persona(['help', 'profiles']);
    expect(sub.stdout).toMatch(/Usage: persona profiles/);
    expect(sub.stdout).toMatch(/\n {2}apply \[options\]/);
  });

  it('runs as the README says: npx persona --help', async () => {
    const r = await run('npx', ['--no-install', 'persona', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: persona \[options\] \[command\]/);
  });
});

describe('colour', () => {
  const GREEN = '\x1b[32m';
  it('colours only when asked where there is no terminal, and never with NO_COLOR or --no-color', async () => {
    expect((await persona(['validate', 'examples/web.yaml'])).stdout).not.toContain('\x1b[');
    expect((await persona(['validate', 'examples/web.yaml'], { CI: 'true' })).stdout).not.toContain('\x1b[');
    expect((await persona(['validate', 'examples/web.yaml'], { FORCE_COLOR: '1' })).stdout).toContain(GREEN);
    expect(
      (await persona(['validate', 'examples/web.yaml', '--no-color'], { FORCE_COLOR: '1' })).stdout,
    ).not.toContain('\x1b[');
    expect(
      (await persona(['validate', 'examples/web.yaml'], { FORCE_COLOR: '1', NO_COLOR: '1' })).stdout,
    ).not.toContain('\x1b[');
  });
});

describe('output formats offline', () => {
  it('prints validate results as YAML with -o yaml and as JSON with --json', async () => {
    const yaml = await persona(['validate', 'examples/web.yaml', '-o', 'yaml']);
    expect(parse(yaml.stdout)).toEqual([
      expect.objectContaining({ file: 'examples/web.yaml', valid: true, name: 'web' }),
    ]);
    const json = await persona(['--json', 'validate', 'examples/web.yaml']);
    expect(JSON.parse(json.stdout)).toEqual(parse(yaml.stdout));
  });
});

describe('persona completion', () => {
  const complete = (script: string, words: string[]) =>
    execFileSync(
      'bash',
      [
        '-c',
        `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _persona; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ],
      { encoding: 'utf8' },
    )
      .split('\n')
      .filter(Boolean);

  it('prints a bash script that bash accepts and that completes commands, subcommands, options and choices', async () => {
    const r = await persona(['completion', 'bash']);
    expect(r.code).toBe(0);
    execFileSync('bash', ['-n'], { input: r.stdout });
    expect(r.stdout).toContain('complete -o default -F _persona persona');
    expect(complete(r.stdout, ['persona', 'pro'])).toEqual(['profiles']);
    expect(complete(r.stdout, ['persona', 'p'])).toEqual(['profiles', 'personas', 'plan', 'pools']);
    expect(complete(r.stdout, ['persona', 'profiles', ''])).toEqual([
      'list',
      'get',
      'apply',
      'history',
      'diff',
    ]);
    expect(complete(r.stdout, ['persona', '--endpoint', 'http://x', 'hosts', 'p'])).toEqual(['persona']);
    expect(complete(r.stdout, ['persona', 'profiles', 'apply', '--exp'])).toEqual(['--expected-version']);
    expect(complete(r.stdout, ['persona', '-o', ''])).toEqual(['table', 'json', 'yaml']);
    expect(complete(r.stdout, ['persona', 'profiles', 'list', '--ti'])).toEqual(['--timeout']);
    expect(complete(r.stdout, ['persona', 'completion', ''])).toEqual(['bash', 'zsh']);
  });

  it('prints a zsh script through bashcompinit, and refuses another shell (2)', async () => {
    const zsh = await persona(['completion', 'zsh']);
    expect(zsh.code).toBe(0);
    expect(zsh.stdout).toMatch(
      /^# persona completion for zsh[^\n]*\nautoload -U \+X bashcompinit && bashcompinit\n/,
    );
    execFileSync('bash', ['-n'], { input: zsh.stdout });
    expect((await persona(['completion', 'fish'])).code).toBe(2);
  });
});
