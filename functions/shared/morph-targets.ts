// The target profiles the API recommends and morphs toward: the folder PERSONA_TARGETS_DIR names;
// in Lambda the function's own folder (the stack bundles examples/targets/*.yaml as JSON beside the
// code: infra/morph.ts); else the project's own examples/targets/ (the embedded runtime).
import { fileURLToPath } from 'node:url';
import { FolderTargetCatalog, type TargetCatalog } from '../../core/morph/catalog.js';

let catalog: TargetCatalog | undefined;

export function targetCatalog(): TargetCatalog {
  catalog ??= new FolderTargetCatalog(
    process.env.PERSONA_TARGETS_DIR ??
      process.env.LAMBDA_TASK_ROOT ??
      fileURLToPath(new URL('../../examples/targets/', import.meta.url)),
  );
  return catalog;
}

/** Tests and the embedded runtime may read targets from a folder of their own. */
export function useTargetCatalog(own: TargetCatalog | undefined): void {
  catalog = own;
}
