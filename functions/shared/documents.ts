// The data bucket's `operations/` documents, for the functions that read or start clones.
import { S3Client } from '@aws-sdk/client-s3';
import { OperationDocuments } from '../../core/clone/documents.js';
import { S3_CHECKSUMS, S3ObjectStore } from '../../core/snapshot/object-store.js';
import { DATA_BUCKET } from '../../core/storage/definitions.js';
import { getRequiredEnv } from './runtime.js';

let documents: OperationDocuments | undefined;

export function cloneDocuments(): OperationDocuments {
  documents ??= new OperationDocuments(
    new S3ObjectStore(
      new S3Client({ ...S3_CHECKSUMS, forcePathStyle: process.env.PERSONA_S3_PATH_STYLE === 'true' }),
      getRequiredEnv(DATA_BUCKET.env),
    ),
  );
  return documents;
}
