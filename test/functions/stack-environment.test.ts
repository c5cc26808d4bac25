// The functions open what they use with exactly the variables the stack gives them
// (infra/permissions.ts through PersonaStorage.connect): none needs the name of a table it is
// not granted, and what it is not granted fails by name when used, never silently.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { HandlerName } from '../../core/api/routes.js';
import { parsePersonaFile } from '../../core/persona/io.js';
import type { Persona } from '../../core/persona/schema.js';
import { DATA_BUCKET, HOST_PERSONAS_TABLE, PERSONAS_TABLE, TABLES } from '../../core/storage/definitions.js';
import { API_HANDLER_GRANTS } from '../../infra/permissions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../local/stand-ins.js';

const tableName = (id: string) => `env-${id.toLowerCase()}`;
let dir: string;
let standIns: StandIns;
const saved = { ...process.env };

/** The process's variables as the stack sets them for `handler`: its tables and bucket only. */
function environmentOf(handler: HandlerName, extra: Record<string, string> = {}): void {
  for (const definition of TABLES) delete process.env[definition.env];
  delete process.env[DATA_BUCKET.env];
  const grants = API_HANDLER_GRANTS[handler];
  for (const id of Object.keys(grants.tables ?? {})) {
    const definition = TABLES.find((t) => t.id === id);
    if (definition) process.env[definition.env] = tableName(id);
  }
  if (grants.objects !== undefined) process.env[DATA_BUCKET.env] = 'env-data';
  Object.assign(process.env, extra);
}

/** The shared modules as a new execution environment loads them: nothing kept from before. */
async function coldStart() {
  vi.resetModules();
  return {
    runtime: await import('../../functions/shared/runtime.js'),
    capture: await import('../../functions/shared/capture.js'),
  };
}

const example = parsePersonaFile(readFileSync('examples/personas/web.yaml'), { source: 'web.yaml' })[0]
  ?.persona as Persona;
const persona = (name: string): Persona => {
  const doc = structuredClone(example);
  doc.metadata.name = name;
  return doc;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-stack-env-'));
  standIns = await startStandIns({
    dataDir: join(dir, 'data'),
    tables: [PERSONAS_TABLE, HOST_PERSONAS_TABLE].map((definition) => ({
      definition,
      name: tableName(definition.id),
    })),
    buckets: [],
  });
}, 120_000);

beforeEach(() => {
  process.env.AWS_ENDPOINT_URL_DYNAMODB = standIns.dynamoEndpoint;
  process.env.AWS_REGION = LOCAL_REGION;
  process.env.AWS_ACCESS_KEY_ID = LOCAL_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = LOCAL_CREDENTIALS.secretAccessKey;
});

afterAll(async () => {
  for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
  Object.assign(process.env, saved);
  vi.resetModules();
  await standIns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the environment the stack gives each function', () => {
  it('lets the persona routes given the personas table only write and read personas', async () => {
    environmentOf('create-persona');
    expect(process.env[HOST_PERSONAS_TABLE.env]).toBeUndefined();
    const { runtime } = await coldStart();
    const created = await runtime.personas().create(persona('env-create'));
    expect(created.version).toMatchObject({ name: 'env-create', version: 1 });

    environmentOf('get-persona');
    const { runtime: reader } = await coldStart();
    const read = await reader.personas().getVersion('env-create', 1);
    expect(read.persona.metadata.name).toBe('env-create');
  });

  it('refuses a delete without the host-persona table, by its name, and deletes nothing', async () => {
    environmentOf('create-persona');
    const { runtime } = await coldStart();
    await runtime.personas().create(persona('env-delete'));
    // A delete asks which hosts have the persona first: without their table it must not go on.
    await expect(runtime.personas().delete('env-delete')).rejects.toThrow(HOST_PERSONAS_TABLE.env);
    expect((await runtime.personas().getVersion('env-delete', 1)).persona.metadata.name).toBe('env-delete');

    environmentOf('delete-persona');
    const { runtime: deleter } = await coldStart();
    expect(await deleter.personas().delete('env-delete')).toMatchObject({ name: 'env-delete' });
  });

  it('records an agent report with the host-persona table only', async () => {
    environmentOf('post-agent-report');
    expect(process.env[PERSONAS_TABLE.env]).toBeUndefined();
    const { runtime } = await coldStart();
    await runtime.assignments().reports.record(
      {
        host: 'env-host',
        revision: '-',
        persona: null,
        version: 0,
        outcome: 'unchanged',
        at: new Date().toISOString(),
        entries: [],
      },
      new Date(),
    );
    // Asking for an assignment, which this route never does, needs the personas table.
    environmentOf('get-agent-assignment');
    const { runtime: assigner } = await coldStart();
    expect(await assigner.assignments().personas.assigned('env-host')).toBeNull();
  });

  it('reaches hosts for install-agent and revoke-agent with the hosts and agents only; operations and profiles fail by name', async () => {
    for (const handler of ['install-agent', 'revoke-agent'] as const) {
      // The way to hosts tells it Persona's key (PersonaWorkflows.allowReachHosts).
      environmentOf(handler, { PERSONA_KEY_ID: 'arn:aws:kms:local:000000000000:key/env' });
      const { capture, runtime } = await coldStart();
      const deps = capture.captureDeps();
      expect(typeof deps.transportFor, handler).toBe('function');
      expect(runtime.agentCredentials(), handler).toBeDefined();
      expect(() => deps.operations, handler).toThrow('OPERATIONS_TABLE');
      expect(() => deps.profiles, handler).toThrow('PROFILES_TABLE');
    }
  });
});
