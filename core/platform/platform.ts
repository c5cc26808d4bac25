// How hosts come and go on one platform. The clone workflow speaks only this interface, so a
// bare-metal pool, EC2 and Azure plug in without the workflow changing:
// - provisioning may take minutes (an instance boots), so `provision` returns a handle at once
//   and `poll` says when the host is ready; a Step Functions Wait loop carries the handle;
// - the transport may be SSH or SSM, chosen by the adaptor for the host it provisioned;
// - giving back what was provisioned (`terminate`) means releasing a pooled machine on bare
//   metal and terminating the instance in a cloud.
// Handles and hosts are small JSON: workflow payloads carry them, never a connection.
import type { Transport } from '../transport/transport.js';
import type { HostShape } from './shape.js';

export const PLATFORMS = ['baremetal', 'ec2', 'azure'] as const;
export type Platform = (typeof PLATFORMS)[number];

/** What a clone asks of a platform. Every field is optional: a pool has fixed machines. */
export interface ProvisionRequest {
  /** The operation provisioning: also the idempotency key, so a retried step gets the same host. */
  readonly operation: string;
  /** Instance size (`m7i.large`, `Standard_D2s_v5`); ignored where machines are fixed. */
  readonly size?: string;
  /** Base image (AMI id, Azure image reference); ignored on bare metal. */
  readonly image?: string;
  /** Network placement (subnet, security groups, VNet), as the platform names them. */
  readonly network?: Readonly<Record<string, string>>;
  readonly volumes?: readonly { readonly name: string; readonly sizeBytes: number; readonly type?: string }[];
  /** Platform-specific choices: the pool on bare metal, tags, a placement group. */
  readonly parameters?: Readonly<Record<string, string>>;
  /** What the source is (processor, memory, OS, volumes, ports): cloud adaptors size and open from it. */
  readonly shape?: HostShape;
  /** Tags (labels) to put on everything provisioned, besides the adaptor's own operation tag. */
  readonly tags?: Readonly<Record<string, string>>;
  /**
   * An SSH public key (OpenSSH `ssh-ed25519 AAAA...` line) to authorise for the login user, for
   * adaptors whose transport is SSH; the private key stays with the caller.
   */
  readonly sshPublicKey?: string;
}

/** A provisioning in progress, to be polled; it names what it took so that it can be given back. */
export interface ProvisionHandle {
  readonly platform: Platform;
  readonly operation: string;
  /** The platform's own id: a machine of a pool, an instance id, a VM resource id. */
  readonly id: string;
  /** Where the platform keeps it: the pool, a region, a resource group. */
  readonly scope: string;
}

/** How the host is reached once it is ready; credentials stay with the composition root. */
export type HostAccess =
  | {
      readonly transport: 'ssh';
      readonly address: string;
      readonly port: number;
      readonly user: string;
      /** `SHA256:...`, pinned: a host that presents another key is refused. */
      readonly hostKeyFingerprint?: string;
    }
  | {
      readonly transport: 'ssm';
      readonly instanceId: string;
      readonly region?: string;
      /** Its private address: not how Persona reaches it, but where validation probes it. */
      readonly address?: string;
    };

export interface ProvisionedHost extends ProvisionHandle {
  readonly access: HostAccess;
}

export type ProvisionStatus =
  | { readonly state: 'pending'; readonly retryAfterMs: number; readonly detail?: string }
  | { readonly state: 'ready'; readonly host: ProvisionedHost }
  | { readonly state: 'failed'; readonly reason: string };

/**
 * What a platform snapshot covers: on bare metal, every path the plan will touch and the state
 * it changes (a Persona snapshot); in a cloud, the volumes (EBS snapshots, managed disk snapshots).
 */
export interface SnapshotScope {
  readonly paths: readonly string[];
  /** Parts of the host's state the plan changes: packages, users, sysctl, routes, firewall, services. */
  readonly state: readonly string[];
}

/** A platform snapshot, by reference: what restore needs to find it again. */
export interface PlatformSnapshotRef {
  readonly platform: Platform;
  /** The snapshot's id in the platform's terms: a Persona snapshot version, EBS snapshot ids. */
  readonly id: string;
  readonly host: string;
}

export type ResizeResult =
  | {
      readonly state: 'resized';
      readonly size: string;
      readonly restarted: boolean;
      /** The size the host had before: what a rollback resizes back to. */
      readonly previous?: string;
    }
  | { readonly state: 'unchanged'; readonly size: string }
  /** The platform cannot resize (a physical machine): the plan lists it as unresolved. */
  | { readonly state: 'unsupported'; readonly reason: string };

export interface ResizeOptions {
  readonly fallback?: readonly string[];
}

export interface PlatformAdaptor {
  readonly platform: Platform;
  /** Starts provisioning, or finds the provisioning this operation already started. */
  provision(request: ProvisionRequest): Promise<ProvisionHandle>;
  /** Where provisioning is; `ready` carries how to reach the host. */
  poll(handle: ProvisionHandle): Promise<ProvisionStatus>;
  snapshot(host: ProvisionedHost, scope: SnapshotScope): Promise<PlatformSnapshotRef>;
  restore(host: ProvisionedHost, snapshot: PlatformSnapshotRef): Promise<void>;
  /**
   * Changes the host's size. `fallback`: sizes tried in order when the platform has no capacity
   * for `size` (or the zone does not offer it); the result names the size the host got.
   */
  resize(host: ProvisionedHost, size: string, options?: ResizeOptions): Promise<ResizeResult>;
  /**
   * Gives back what `provision` took: a pooled machine returns to its pool, an instance is
   * terminated. Idempotent, and a no-op for a handle this operation no longer holds.
   */
  terminate(handle: ProvisionHandle): Promise<void>;
  /** A transport to the host; the caller closes it. */
  transport(host: ProvisionedHost): Promise<Transport>;
}
