// The host executors for Debian-family hosts, by the Change kind each handles.
import type { ChangeKind } from '../../delta/changes.js';
import { groupExecutor, userExecutor } from './accounts.js';
import { envExecutor } from './env.js';
import type { Executor } from './executor.js';
import { fileExecutor } from './file.js';
import { serviceExecutor } from './services.js';
import { sysctlExecutor } from './sysctl.js';

export type Executors = ReadonlyMap<ChangeKind, Executor>;

export function executorsFor(list: readonly Executor[]): Executors {
  const map = new Map<ChangeKind, Executor>();
  for (const executor of list) for (const kind of executor.kinds) map.set(kind, executor);
  return map;
}

export const DEBIAN_EXECUTORS: Executors = executorsFor([
  sysctlExecutor,
  fileExecutor,
  envExecutor,
  groupExecutor,
  userExecutor,
  serviceExecutor,
]);
