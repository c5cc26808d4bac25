// The persona store on DynamoDB Local: versions written only on top of the version read,
// unchanged writes that write nothing, documents checked against their hash, deletes refused
// while a host has the persona.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConflictError,
  InvalidInputError,
  NotFoundError,
  PreconditionRequiredError,
  TooLargeError,
} from '../../../core/errors.js';
import { parsePersona, parsePersonaFile, validatePersona } from '../../../core/persona/io.js';
import { MAX_CRITERIA_DEPTH, type Persona, type PersonaInput } from '../../../core/persona/schema.js';
import { HostPersonaStore } from '../../../core/persona/state.js';
import { CorruptPersonaError, PersonaStore } from '../../../core/persona/store.js';
import { HOST_PERSONAS_TABLE, PERSONAS_TABLE } from '../../../core/storage/definitions.js';
import { encodeCursor } from '../../../core/storage/pagination.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let ddb: DynamoDBDocumentClient;
let store: PersonaStore;
let hostPersonas: HostPersonaStore;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-personas-'));
  standIns = await startStandIns({
    dataDir: join(dir, 'data'),
    tables: [
      { definition: PERSONAS_TABLE, name: 'personas' },
      { definition: HOST_PERSONAS_TABLE, name: 'host-personas' },
    ],
    buckets: [],
  });
  ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: standIns.dynamoEndpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  hostPersonas = new HostPersonaStore(ddb, 'host-personas');
  store = new PersonaStore(ddb, 'personas', { hostPersonas });
}, 120_000);

afterAll(async () => {
  ddb?.destroy();
  await standIns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const examples = parsePersonaFile(readFileSync('examples/personas/web.yaml'), { source: 'web.yaml' });
const example = (name: string): Persona => {
  const found = examples.find((d) => d.persona.metadata.name === name);
  if (!found) throw new Error(`no example ${name}`);
  return structuredClone(found.persona);
};

/** A persona under its own name, so that tests do not share history. */
function persona(name: string, change: (p: PersonaInput) => void = () => {}): Persona {
  const doc = example('web-peak') as PersonaInput;
  doc.metadata.name = name;
  change(doc);
  return validatePersona(doc);
}

describe('PersonaStore writes', () => {
  it('creates version 1, answers a retried create with it, and refuses another document (409)', async () => {
    const created = await store.create(persona('create-1'));
    expect(created).toMatchObject({ created: true, warnings: [], version: { name: 'create-1', version: 1 } });
    expect(created.version.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    const again = await store.create(persona('create-1'));
    expect(again).toMatchObject({ created: false, version: { version: 1, hash: created.version.hash } });
    const other = await store
      .create(persona('create-1', (p) => (p.spec.priority = 11)))
      .catch((e: unknown) => e);
    expect(other).toBeInstanceOf(ConflictError);
    expect((other as ConflictError).current).toBe(1);
  });

  it('writes the next version on top of the one read, and refuses a stale one, changing nothing', async () => {
    await store.create(persona('put-1'));
    const v2 = await store.put(
      'put-1',
      persona('put-1', (p) => (p.spec.priority = 12)),
      { expectedVersion: 1 },
    );
    expect(v2).toMatchObject({ created: true, version: { version: 2 } });
    const stale = await store
      .put(
        'put-1',
        persona('put-1', (p) => (p.spec.priority = 13)),
        { expectedVersion: 1 },
      )
      .catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(ConflictError);
    expect((stale as ConflictError).current).toBe(2);
    expect((await store.get('put-1')).persona.spec.priority).toBe(12);
  });

  it('writes nothing for a document equal to the latest, and treats a retried write as done', async () => {
    await store.create(persona('same-1'));
    const same = await store.put('same-1', persona('same-1'), { expectedVersion: 1 });
    expect(same).toMatchObject({ created: false, version: { version: 1 } });
    const next = persona('same-1', (p) => (p.metadata.description = 'second'));
    await store.put('same-1', next, { expectedVersion: 1 });
    const retry = await store.put('same-1', next, { expectedVersion: 1 });
    expect(retry).toMatchObject({ created: false, version: { version: 2 } });
    expect((await store.versions('same-1')).items.map((v) => v.version)).toEqual([2, 1]);
  });

  it('compares documents in canonical form: key order and left-out defaults make no new version', async () => {
    await store.create(persona('canon-1'));
    const reordered = JSON.parse(JSON.stringify(persona('canon-1')), (_k, v) =>
      v !== null && typeof v === 'object' && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).reverse())
        : v,
    );
    delete reordered.spec.mode;
    delete reordered.spec.override;
    const res = await store.put('canon-1', parsePersona(JSON.stringify(reordered)), { expectedVersion: 1 });
    expect(res.created).toBe(false);
  });

  it('lets exactly one of several concurrent writers of the same version win', async () => {
    await store.create(persona('race-1'));
    const writers = Array.from({ length: 5 }, (_, i) =>
      store.put(
        'race-1',
        persona('race-1', (p) => (p.metadata.description = `writer ${i}`)),
        {
          expectedVersion: 1,
        },
      ),
    );
    const results = await Promise.allSettled(writers);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
    expect((await store.versions('race-1')).items.map((v) => v.version)).toEqual([2, 1]);
  });

  it('requires the version read, names metadata.name when it differs from the path, and creates with 0', async () => {
    await expect(store.put('pre-1', persona('pre-1'), { expectedVersion: undefined })).rejects.toBeInstanceOf(
      PreconditionRequiredError,
    );
    const mismatch = await store
      .put('other-name', persona('pre-1'), { expectedVersion: 0 })
      .catch((e: unknown) => e);
    expect((mismatch as InvalidInputError).issues[0]?.path).toBe('metadata.name');
    expect(await store.put('pre-1', persona('pre-1'), { expectedVersion: 0 })).toMatchObject({
      created: true,
      version: { version: 1 },
    });
    await expect(store.put('ghost-1', persona('ghost-1'), { expectedVersion: 3 })).rejects.toBeInstanceOf(
      ConflictError,
    );
    await expect(store.get('ghost-1')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('refuses an invalid document naming every bad field, and writes nothing', async () => {
    const bad = { ...persona('bad-1'), spec: { ...persona('bad-1').spec, priority: -1, surprise: true } };
    const error = await store.create(bad as unknown as Persona).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).issues.map((i) => i.path)).toEqual(
      expect.arrayContaining(['spec.priority', 'spec.surprise']),
    );
    await expect(store.get('bad-1')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('refuses a document too large to store once its defaults are filled (413), writing nothing', async () => {
    const base = persona('huge-1');
    const sysctl = Object.fromEntries(
      Array.from({ length: 12_000 }, (_, i) => [`net.test.key_${i}`, 'a value of some length']),
    );
    const huge = { ...base, spec: { ...base.spec, parameters: { ...base.spec.parameters, sysctl } } };
    await expect(store.create(huge)).rejects.toBeInstanceOf(TooLargeError);
    await expect(store.get('huge-1')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('warns (spec.default), and still writes, when another persona is the default for the same hosts', async () => {
    const selector = { labels: { role: 'warn-test' }, names: ['b-host', 'a-host'] };
    const first = await store.create(
      persona('default-a', (p) => {
        p.spec.default = true;
        p.spec.hosts = selector;
      }),
    );
    expect(first.warnings).toEqual([]);
    const second = await store.create(
      persona('default-b', (p) => {
        p.spec.default = true;
        p.spec.hosts = { names: ['a-host', 'b-host'], labels: { role: 'warn-test' } };
      }),
    );
    expect(second.created).toBe(true);
    expect(second.warnings).toEqual([
      expect.objectContaining({
        path: 'spec.default',
        message: expect.stringMatching(/default-a is also the default/),
      }),
    ]);
    const elsewhere = await store.create(
      persona('default-c', (p) => {
        p.spec.default = true;
        p.spec.hosts = { labels: { role: 'elsewhere' } };
      }),
    );
    expect(elsewhere.warnings).toEqual([]);
  });
});

describe('PersonaStore criteria depth', () => {
  const nested = (depth: number) => {
    let c: unknown = { signal: { name: 'freeze', op: '==', value: true } };
    for (let i = 1; i < depth; i++) c = { not: c };
    return c;
  };

  it(`accepts criteria ${MAX_CRITERIA_DEPTH} deep and refuses one more, naming the criterion`, async () => {
    const ok = await store.create(
      persona('deep-ok', (p) => (p.spec.criteria = nested(MAX_CRITERIA_DEPTH) as never)),
    );
    expect(ok.created).toBe(true);
    const base = persona('deep-too');
    const tooDeep = { ...base, spec: { ...base.spec, criteria: nested(MAX_CRITERIA_DEPTH + 1) } };
    const error = await store.create(tooDeep as Persona).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    const [issue] = (error as InvalidInputError).issues;
    expect(issue?.path).toBe(`spec.criteria${'.not'.repeat(MAX_CRITERIA_DEPTH)}`);
    expect(issue?.message).toMatch(/deeper than 16 levels/);
  });

  it('counts all/any levels as well, naming the list entry that is too deep', () => {
    let c: unknown = { metric: { name: 'cpu.utilization', op: '>', value: 1 } };
    for (let i = 1; i <= MAX_CRITERIA_DEPTH; i++) c = i % 2 ? { any: [c] } : { not: c };
    const doc = { ...persona('deep-mixed'), spec: { ...persona('deep-mixed').spec, criteria: c } };
    const error = (() => {
      try {
        parsePersona(JSON.stringify(doc));
      } catch (e) {
        return e;
      }
    })() as InvalidInputError;
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.issues[0]?.path).toMatch(/^spec\.criteria(\.not|\.any\[0\])+$/);
  });
});

describe('PersonaStore reads', () => {
  it('reads the latest and any version, and names the latest when a version is missing', async () => {
    await store.create(persona('read-1'));
    await store.put(
      'read-1',
      persona('read-1', (p) => (p.spec.priority = 5)),
      { expectedVersion: 1 },
    );
    expect((await store.get('read-1')).version.version).toBe(2);
    expect((await store.getVersion('read-1', 1)).persona.spec.priority).toBe(10);
    await expect(store.getVersion('read-1', 9)).rejects.toThrow(/has no version 9 \(latest is 2\)/);
    await expect(store.getVersion('nobody', 1)).rejects.toThrow(/persona nobody does not exist/);
  });

  it('lists personas a page at a time, and refuses a cursor of another listing or one edited', async () => {
    for (const n of ['list-a', 'list-b', 'list-c']) await store.create(persona(n));
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.list({ limit: 2, cursor });
      seen.push(...page.items.map((h) => h.name));
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    expect(seen).toEqual(expect.arrayContaining(['list-a', 'list-b', 'list-c']));
    expect(seen).toEqual([...seen].sort());
    const head = (await store.list({ limit: 100 })).items.find((h) => h.name === 'list-a');
    expect(head).toMatchObject({
      latest: 1,
      priority: 10,
      default: false,
      mode: 'act',
      hosts: { labels: { role: 'web' } },
    });
    expect(head).not.toHaveProperty('body');

    const versionsCursor = encodeCursor('personas/list-a/versions', { name: 'list-a', version: 1 });
    for (const forged of [
      versionsCursor,
      encodeCursor('personas', { entity: 'profile', name: 'list-a', version: 0 }),
      encodeCursor('personas', { entity: 'persona', name: 'list-a', version: 0, extra: 1 }),
      'bm90IGEgY3Vyc29y',
    ]) {
      const error = await store.list({ cursor: forged }).catch((e: unknown) => e);
      expect((error as InvalidInputError).issues?.[0]?.path, forged).toBe('cursor');
    }
    // A cursor of one persona's versions does not page another's.
    await expect(store.versions('list-b', { cursor: versionsCursor })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });

  it('pages versions newest first', async () => {
    await store.create(persona('hist-1'));
    for (let v = 1; v <= 4; v++)
      await store.put(
        'hist-1',
        persona('hist-1', (p) => (p.spec.priority = 20 + v)),
        { expectedVersion: v },
      );
    const first = await store.versions('hist-1', { limit: 3 });
    expect(first.items.map((v) => v.version)).toEqual([5, 4, 3]);
    const second = await store.versions('hist-1', { limit: 3, cursor: first.nextCursor });
    expect(second.items.map((v) => v.version)).toEqual([2, 1]);
    await expect(store.versions('nobody')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('loads every persona with its document, as evaluation reads them', async () => {
    await store.create(persona('load-1', (p) => (p.spec.priority = 3)));
    const all = await store.loadAll();
    const mine = all.find((p) => p.persona.metadata.name === 'load-1');
    expect(mine?.persona.spec.priority).toBe(3);
    expect(mine?.version.version).toBe(1);
  });

  it('reports a document changed in the table as damage to that version, never serving it', async () => {
    await store.create(persona('corrupt-1'));
    const tampered = serializeWith(persona('corrupt-1'), 1);
    for (const version of [0, 1]) {
      await ddb.send(
        new UpdateCommand({
          TableName: 'personas',
          Key: { name: 'corrupt-1', version },
          UpdateExpression: 'SET body = :b',
          ExpressionAttributeValues: { ':b': tampered },
        }),
      );
    }
    await expect(store.get('corrupt-1')).rejects.toBeInstanceOf(CorruptPersonaError);
    await expect(store.getVersion('corrupt-1', 1)).rejects.toThrow(
      /version 1 is damaged: its document hashes to/,
    );
  });
});

function serializeWith(p: Persona, priority: number): string {
  return JSON.stringify({ ...p, spec: { ...p.spec, priority } });
}

describe('PersonaStore delete', () => {
  it('deletes the head and every version, after which the name starts again at version 1', async () => {
    await store.create(persona('del-1'));
    await store.put(
      'del-1',
      persona('del-1', (p) => (p.spec.priority = 2)),
      { expectedVersion: 1 },
    );
    expect(await store.delete('del-1')).toEqual({ name: 'del-1', versions: 2 });
    await expect(store.get('del-1')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.getVersion('del-1', 1)).rejects.toBeInstanceOf(NotFoundError);
    expect((await store.list({ limit: 100 })).items.map((h) => h.name)).not.toContain('del-1');
    expect((await store.create(persona('del-1'))).version.version).toBe(1);
    await expect(store.delete('never-was')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('deletes a persona of more versions than one transaction holds', async () => {
    await store.create(persona('del-many'));
    for (let v = 1; v < 120; v++)
      await store.put(
        'del-many',
        persona('del-many', (p) => (p.spec.priority = v)),
        { expectedVersion: v },
      );
    expect(await store.delete('del-many')).toEqual({ name: 'del-many', versions: 120 });
    await expect(store.getVersion('del-many', 7)).rejects.toBeInstanceOf(NotFoundError);
  }, 60_000);

  it('refuses (409, naming the host) while a host has the persona, and deletes once it left', async () => {
    await store.create(persona('del-held'));
    const held = { host: 'web-7', current: 'del-held', currentVersion: 1, since: Date.now() };
    await hostPersonas.save(held, undefined);
    const error = await store.delete('del-held').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as Error).message).toMatch(/current persona of host web-7/);
    expect((await store.get('del-held')).version.version).toBe(1);
    await hostPersonas.save({ host: 'web-7', current: null, since: Date.now() + 1 }, held);
    expect(await store.delete('del-held')).toEqual({ name: 'del-held', versions: 1 });
  });

  it('refuses a delete whose expected version is not the latest', async () => {
    await store.create(persona('del-stale'));
    await store.put(
      'del-stale',
      persona('del-stale', (p) => (p.spec.priority = 2)),
      { expectedVersion: 1 },
    );
    await expect(store.delete('del-stale', { expectedVersion: 1 })).rejects.toBeInstanceOf(ConflictError);
    expect((await store.get('del-stale')).version.version).toBe(2);
  });
});

describe('parsePersonaFile', () => {
  const doc = (name: string) =>
    `apiVersion: persona/v1\nkind: Persona\nmetadata: { name: ${name} }\nspec: { hosts: {}, parameters: {} }\n`;
  const names = (text: string | Uint8Array) =>
    parsePersonaFile(text).map((d) => [d.persona.metadata.name, d.line]);

  it('splits at document starts and ends, keeping comments and directives with the document they precede', () => {
    expect(names(`# the fleet\n---\n${doc('a')}---\n${doc('b')}`)).toEqual([
      ['a', 1],
      ['b', 7],
    ]);
    expect(names(`${doc('a')}...\n%YAML 1.2\n---\n${doc('b')}...\n`)).toEqual([
      ['a', 1],
      ['b', 6],
    ]);
    // A `---` inside a quoted value is not a separator.
    expect(
      names(
        doc('a')
          .replace('parameters: {}', 'parameters: {}\n  \n')
          .replace('kind: Persona', 'kind: "Persona"'),
      ),
    ).toEqual([['a', 1]]);
    expect(names(`${doc('a')}---\n---\n# nothing here\n---\n${doc('b')}`).map(([n]) => n)).toEqual([
      'a',
      'b',
    ]);
    expect(names(JSON.stringify(parsePersona(doc('j'))))).toEqual([['j', 1]]);
  });

  it('refuses an empty file, bytes that are not UTF-8 (naming the line), and too many documents', () => {
    expect(() => parsePersonaFile('# only a comment\n')).toThrow(/holds no persona/);
    const bad = Buffer.concat([Buffer.from(`${doc('a')}# caf`), Buffer.from([0xe9]), Buffer.from('\n')]);
    const error = (() => {
      try {
        parsePersonaFile(bad, { source: 'latin1.yaml' });
      } catch (e) {
        return e as InvalidInputError;
      }
    })();
    expect(error?.issues[0]).toMatchObject({
      line: 5,
      message: expect.stringMatching(/invalid UTF-8 at byte/),
    });
    const many = Array.from({ length: 201 }, (_, i) => doc(`p${i}`)).join('---\n');
    expect(() => parsePersonaFile(many)).toThrow(/too many documents/);
  });
});
