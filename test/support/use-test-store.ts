// A test file's snapshot store, started and stopped by its hooks (snapshot-store.ts has the
// store itself, which benches use outside vitest too).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startTestStore, type TestStore } from './snapshot-store.js';

/** The test file's store, and fresh folders in its directory: `fresh('src')` is a new empty one. */
export interface FileTestStore extends TestStore {
  fresh(name: string): string;
}

/**
 * A store for the tests of one file: started before them (hooks the file registers after this
 * call run after it has started) and stopped after them.
 */
export function useTestStore(): FileTestStore {
  let current: TestStore | undefined;
  let counter = 0;
  beforeAll(async () => {
    current = await startTestStore();
  });
  afterAll(async () => {
    await current?.stop();
  });
  const ts = (): TestStore => {
    if (current === undefined)
      throw new Error('the test store is started in beforeAll: use it in a test or a hook');
    return current;
  };
  return {
    get dir() {
      return ts().dir;
    },
    get standIns() {
      return ts().standIns;
    },
    get bucket() {
      return ts().bucket;
    },
    get s3() {
      return ts().s3;
    },
    get ddb() {
      return ts().ddb;
    },
    get env() {
      return ts().env;
    },
    deps: (options) => ts().deps(options),
    open: (options) => ts().open(options),
    stop: () => ts().stop(),
    fresh: (name) => {
      const dir = join(ts().dir, `${name}-${counter++}`);
      mkdirSync(dir, { recursive: true });
      return dir;
    },
  };
}
