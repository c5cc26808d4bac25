// The host executors for Debian-family hosts, by the Change kind each handles.
import type { ChangeKind } from '../../delta/changes.js';
import { groupExecutor, userExecutor } from './accounts.js';
import { bandwidthExecutor } from './bandwidth.js';
import { cgroupExecutor, resourceExecutor } from './cgroups.js';
import { dnsExecutor } from './dns.js';
import { envExecutor } from './env.js';
import type { Executor } from './executor.js';
import { fileExecutor } from './file.js';
import { firewallExecutor } from './firewall.js';
import { ingressExecutor } from './ingress.js';
import { kmodExecutor } from './kmod.js';
import { type PackageSource, packageExecutor } from './packages.js';
import { applicationExecutor, processAddExecutor, processRemoveExecutor } from './processes.js';
import { routeExecutor } from './routes.js';
import {
  serviceAddExecutor,
  serviceExecutor,
  serviceRemoveExecutor,
  serviceUpdateExecutor,
} from './services.js';
import { sshKeyExecutor } from './sshkeys.js';
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
  serviceAddExecutor,
  serviceUpdateExecutor,
  serviceRemoveExecutor,
  processAddExecutor,
  processRemoveExecutor,
  applicationExecutor,
  cgroupExecutor,
  resourceExecutor,
  firewallExecutor,
  routeExecutor,
  kmodExecutor,
  sshKeyExecutor,
  dnsExecutor,
  // Persona switches only (a Profile holds neither): tc egress limits, Persona's own nft table.
  bandwidthExecutor,
  ingressExecutor,
]);

/**
 * The Debian executors with packages, installed from `packages` (the package store and the
 * mirror the control side reaches). Without a package source a Delta holding a package Change
 * is refused before anything changes.
 */
export function debianExecutors(packages: PackageSource): Executors {
  return executorsFor([...new Set(DEBIAN_EXECUTORS.values()), packageExecutor(packages)]);
}

export { rhelExecutors } from './rhel.js';
