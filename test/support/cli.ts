// Runs the `persona` command as a user would: a separate process, against a running runtime.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { TestPersona } from './local.js';

const exec = promisify(execFile);

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runPersona(api: TestPersona, ...args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['cli/bin.js', ...args], {
      env: {
        ...process.env,
        PERSONA_ENDPOINT: api.url,
        PERSONA_DATA: api.dataDir,
        NO_COLOR: '1',
        FORCE_COLOR: '0',
      },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}
