// A clone's documents (request, target, baseline, plan, validation report, rollback record) as
// JSON objects under `operations/<id>/` in the data bucket. Workflow payloads carry the
// operation id only; every step finds what the steps before it wrote at these fixed keys, so a
// step delivered twice reads and writes the same objects.
import { NotFoundError } from '../errors.js';
import type { ObjectStore } from '../snapshot/object-store.js';

export const OPERATIONS_PREFIX = 'operations/';

export const DOCUMENTS = ['request', 'target', 'baseline', 'plan', 'applied', 'report', 'rollback'] as const;
export type DocumentName = (typeof DOCUMENTS)[number];

export const documentKey = (operation: string, name: DocumentName): string =>
  `${OPERATIONS_PREFIX}${operation}/${name}.json`;

export class OperationDocuments {
  constructor(private readonly objects: ObjectStore) {}

  async put(operation: string, name: DocumentName, value: unknown): Promise<string> {
    const key = documentKey(operation, name);
    await this.objects.put(key, Buffer.from(JSON.stringify(value), 'utf8'));
    return key;
  }

  async get<T>(operation: string, name: DocumentName): Promise<T> {
    return JSON.parse(
      Buffer.from(await this.objects.get(documentKey(operation, name))).toString('utf8'),
    ) as T;
  }

  async find<T>(operation: string, name: DocumentName): Promise<T | undefined> {
    try {
      return await this.get<T>(operation, name);
    } catch (e) {
      if (e instanceof NotFoundError || (e as { name?: string }).name === 'NoSuchKey') return undefined;
      throw e;
    }
  }
}
