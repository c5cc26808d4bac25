// Starts the embedded runtime (DynamoDB Local, the S3-protocol server, the API functions
// behind local HTTP) in a fresh data folder, for tests that exercise the real code paths.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalOptions, type LocalPersona, startLocal } from '../../local/runtime.js';

export interface TestPersona extends LocalPersona {
  readonly dataDir: string;
  /** fetch against the API, returning status, headers and the parsed JSON body. */
  call(
    method: string,
    path: string,
    init?: { body?: unknown; raw?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; headers: Headers; body: any }>;
}

export async function startTestPersona(
  options: Pick<LocalOptions, 'platforms' | 'samplingIntervalMs'> = {},
): Promise<TestPersona> {
  const dataDir = mkdtempSync(join(tmpdir(), 'persona-test-'));
  const persona = await startLocal({ dataDir, port: 0, ...options });
  return {
    ...persona,
    dataDir,
    async call(method, path, init = {}) {
      const body = init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
      const res = await fetch(`${persona.url}${path}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers },
        ...(body === undefined ? {} : { body }),
      });
      const text = await res.text();
      return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
    },
    async stop() {
      await persona.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The clone events the embedded runtime has announced, once `detailType` is among them: an
 * outcome is announced just after the operation records it, so a reader that saw the operation
 * end waits a moment (at most 4 s).
 */
export async function eventsWith(api: TestPersona, detailType: string): Promise<string> {
  let text = '';
  for (let i = 0; i < 40; i++) {
    try {
      text = readFileSync(join(api.dataDir, 'events.jsonl'), 'utf8');
    } catch {
      text = '';
    }
    if (text.includes(`"${detailType}"`)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return text;
}
