// What the morph task needs: the clone task's dependencies (hosts, transports, snapshots for
// the baseline capture and the rollback snapshot, the journal, the executors, the platforms),
// and the profile store the new Profile version is recorded in.
import type { MorphDeps } from '../../../core/morph/workflow.js';
import { cloneDeps } from '../../shared/clone.js';
import { stores } from '../../shared/runtime.js';

export async function morphDeps(): Promise<MorphDeps> {
  const clone = await cloneDeps();
  return {
    operations: clone.operations,
    hosts: clone.hosts,
    documents: clone.documents,
    journal: clone.journal,
    snapshots: clone.snapshots,
    transportFor: clone.transportFor,
    executors: clone.executors,
    ...(clone.platforms ? { platforms: clone.platforms } : {}),
    profiles: stores(),
  };
}
