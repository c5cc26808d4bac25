// What functions keep for the life of their execution environment.
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_BUCKET } from '../../core/storage/definitions.js';
import { captureDeps } from '../../functions/shared/capture.js';
import { keepOnSuccess } from '../../functions/shared/runtime.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

describe('keepOnSuccess', () => {
  it('makes the value once and keeps it', async () => {
    let made = 0;
    const get = keepOnSuccess(async () => ++made);
    expect(await Promise.all([get(), get()])).toEqual([1, 1]);
    expect(await get()).toBe(1);
  });

  it('forgets a failed attempt, so that the next call tries again', async () => {
    let calls = 0;
    const get = keepOnSuccess(async () => {
      calls++;
      if (calls === 1) throw new Error('the store could not be opened');
      return 'store';
    });
    await expect(get()).rejects.toThrow('could not be opened');
    expect(await get()).toBe('store');
    expect(await get()).toBe('store');
    expect(calls).toBe(2);
  });
});

describe('the capture function’s snapshot store', () => {
  let persona: TestPersona;
  const saved = process.env[DATA_BUCKET.env];

  beforeAll(async () => {
    persona = await startTestPersona();
  });

  afterAll(async () => {
    process.env[DATA_BUCKET.env] = saved;
    await persona?.stop();
  });

  it('is opened again at the next invocation after an open failed, not failed for the container’s life', async () => {
    // The bucket is not there yet: opening the store fails, as it would while S3 was unreachable.
    const bucket = `persona-late-${Date.now()}`;
    process.env[DATA_BUCKET.env] = bucket;
    const deps = captureDeps();
    await expect(deps.snapshots()).rejects.toThrow();

    const s3 = new S3Client({ endpoint: persona.s3Endpoint, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const store = await deps.snapshots();
    expect(store).toBeDefined();
    expect(await deps.snapshots()).toBe(store);
  });
});
