// Starts the embedded runtime (DynamoDB Local, the S3-protocol server, the API functions
// behind local HTTP) in a fresh data folder, for tests that exercise the real code paths.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalPersona, startLocal } from '../../local/runtime.js';

export interface TestPersona extends LocalPersona {
  readonly dataDir: string;
  /** fetch against the API, returning status, headers and the parsed JSON body. */
  call(
    method: string,
    path: string,
    init?: { body?: unknown; raw?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; headers: Headers; body: any }>;
}

export async function startTestPersona(): Promise<TestPersona> {
  const dataDir = mkdtempSync(join(tmpdir(), 'persona-test-'));
  const persona = await startLocal({ dataDir, port: 0 });
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
