// The apply journal on DynamoDB Local: one item per Change written under a condition, moved
// through its states under conditions, read back in order, and refused when it cannot be read.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../../../core/delta/changes.js';
import { ConflictError, InvalidInputError } from '../../../core/errors.js';
import { CorruptJournalError, DynamoJournal } from '../../../core/orchestrator/journal.js';
import { JOURNAL_TABLE } from '../../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let ddb: DynamoDBDocumentClient;
let journal: DynamoJournal;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-journal-'));
  standIns = await startStandIns({
    dataDir: join(dir, 'data'),
    tables: [{ definition: JOURNAL_TABLE, name: 'journal' }],
    buckets: [],
  });
  ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: standIns.dynamoEndpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    }),
  );
  journal = new DynamoJournal(ddb, 'journal');
}, 120_000);

afterAll(async () => {
  ddb?.destroy();
  await standIns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const sysctl = (value: string): Change => ({
  kind: 'sysctl.set',
  section: 'sysctl',
  key: 'net.ipv4.ip_default_ttl',
  from: '64',
  to: value,
  disruptive: false,
});

describe('DynamoJournal', () => {
  it('keeps each entry with the Change and what preceded it, in apply order', async () => {
    const prior = {
      live: '64',
      file: { path: '/etc/sysctl.d/60-persona.conf', state: { kind: 'absent' }, createdDirs: [] },
    };
    for (const seq of [0, 1, 2]) await journal.begin('op-order', seq, sysctl(String(70 + seq)), prior);
    await journal.applied('op-order', 0, { status: 'changed', detail: 'set' });
    const entries = await journal.entries('op-order');
    expect(entries.map((e) => [e.seq, e.state, e.change.to])).toEqual([
      [0, 'applied', '70'],
      [1, 'applying', '71'],
      [2, 'applying', '72'],
    ]);
    expect(entries[0]?.prior).toEqual(prior);
    expect(entries[0]?.outcome).toEqual({ status: 'changed', detail: 'set' });
  });

  it('lets only one of two writers journal the same position', async () => {
    const results = await Promise.allSettled([
      journal.begin('op-race', 0, sysctl('70'), null),
      journal.begin('op-race', 0, sysctl('71'), null),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(rejected.reason).toBeInstanceOf(ConflictError);
    expect(await journal.entries('op-race')).toHaveLength(1);
  });

  it('marks an entry applied only once, and reverted from any state, again without harm', async () => {
    await journal.begin('op-states', 0, sysctl('70'), null);
    await journal.applied('op-states', 0, { status: 'changed', detail: 'set' });
    await expect(
      journal.applied('op-states', 0, { status: 'changed', detail: 'again' }),
    ).rejects.toBeInstanceOf(ConflictError);
    await journal.reverted('op-states', 0, { status: 'changed', detail: 'back' });
    await journal.reverted('op-states', 0, { status: 'unchanged', detail: 'as it was' });
    expect((await journal.entries('op-states'))[0]?.state).toBe('reverted');
    // An entry that was never begun cannot be marked.
    await expect(journal.reverted('op-states', 5, { status: 'changed', detail: 'x' })).rejects.toBeInstanceOf(
      ConflictError,
    );
  });

  it('marks entries applied and begins the next ones in one write, or none of it when any is refused', async () => {
    await journal.begin('op-pair', 0, sysctl('70'), null);
    await journal.write('op-pair', {
      applied: [{ seq: 0, outcome: { status: 'changed', detail: 'set' } }],
      begin: [{ seq: 1, change: sysctl('71'), prior: { was: '64' } }],
    });
    expect((await journal.entries('op-pair')).map((e) => [e.seq, e.state])).toEqual([
      [0, 'applied'],
      [1, 'applying'],
    ]);
    // Position 1 is taken: neither write happens, and entry 1 stays as it was.
    const refused = journal.write('op-pair', {
      applied: [],
      begin: [
        { seq: 2, change: sysctl('72'), prior: null },
        { seq: 1, change: sysctl('72'), prior: null },
      ],
    });
    await expect(refused).rejects.toBeInstanceOf(ConflictError);
    await expect(refused).rejects.toThrow(/already journaled change 2/);
    expect((await journal.entries('op-pair')).map((e) => [e.seq, e.state])).toEqual([
      [0, 'applied'],
      [1, 'applying'],
    ]);
    // An entry already applied is not applied again, and the next is not begun.
    await expect(
      journal.write('op-pair', {
        applied: [{ seq: 0, outcome: { status: 'changed', detail: 'x' } }],
        begin: [{ seq: 2, change: sysctl('73'), prior: null }],
      }),
    ).rejects.toThrow(/change 1 of operation op-pair is not applying/);
    expect(await journal.entries('op-pair')).toHaveLength(2);
  });

  it('refuses an entry it cannot read instead of guessing, naming it', async () => {
    await ddb.send(
      new PutCommand({
        TableName: 'journal',
        Item: {
          operation: 'op-corrupt',
          seq: 0,
          change: '{"kind":"rm -rf"}',
          prior: 'null',
          state: 'applied',
          updatedAt: 'x',
        },
      }),
    );
    await expect(journal.entries('op-corrupt')).rejects.toBeInstanceOf(CorruptJournalError);
    await expect(journal.entries('op-corrupt')).rejects.toThrow(/journal entry 0 of operation op-corrupt/);
  });

  it('refuses operation ids that could name another folder on a host', async () => {
    await expect(journal.begin('../etc', 0, sysctl('70'), null)).rejects.toBeInstanceOf(InvalidInputError);
    await expect(journal.entries('a/b')).rejects.toBeInstanceOf(InvalidInputError);
  });
});
