// Bare metal: an inventory of existing machines reached over SSH, grouped in pools and kept in
// DynamoDB (INVENTORY_TABLE). Provisioning takes a free machine of the pool with a conditional
// write, so two clones racing for the last machine cannot both get it; rollback gives it back
// under the condition that the operation still holds it, so a late rollback of one operation
// never frees a machine another has since taken.
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  paginateQuery,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { ConflictError, InvalidInputError, NotFoundError } from '../errors.js';
import { displayValue } from '../transport/shell.js';
import type { Transport } from '../transport/transport.js';
import { PoolExhaustedError } from './errors.js';
import type {
  HostAccess,
  PlatformAdaptor,
  PlatformSnapshotRef,
  ProvisionedHost,
  ProvisionHandle,
  ProvisionRequest,
  ProvisionStatus,
  ResizeResult,
  SnapshotScope,
} from './platform.js';

// Names that go into keys, messages and (for operations) paths on hosts: no separators beyond
// these, nothing a program could read as an option.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export function checkName(value: string, field: string): string {
  if (!NAME.test(value)) {
    throw new InvalidInputError(`${field} ${displayValue(value)} is not a valid name`, [
      {
        path: field,
        message: 'expected 1 to 128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit',
      },
    ]);
  }
  return value;
}

export const Machine = z
  .strictObject({
    pool: z.string().regex(NAME),
    machine: z.string().regex(NAME),
    address: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(22),
    user: z.string().min(1),
    /**
     * The registered host the machine is (POST /hosts): how Persona reaches it, its pinned key and
     * its credential. Defaults to the machine's own name.
     */
    host: z.string().regex(NAME).optional(),
    hostKeyFingerprint: z
      .string()
      .regex(/^SHA256:[A-Za-z0-9+/]{43}$/)
      .optional(),
    state: z.enum(['free', 'held']),
    /** The operation holding the machine. */
    holder: z.string().optional(),
    heldAt: z.iso.datetime().optional(),
  })
  .meta({ id: 'Machine' });
export type Machine = z.infer<typeof Machine>;
export type NewMachine = Omit<z.input<typeof Machine>, 'state' | 'holder' | 'heldAt'>;

const isConditionFailure = (e: unknown) =>
  (e as { name?: string } | null)?.name === 'ConditionalCheckFailedException';

export class BareMetalInventory {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Adds a free machine; ConflictError when the pool already has one of that name. */
  async add(machine: NewMachine): Promise<Machine> {
    checkName(machine.pool, 'pool');
    checkName(machine.machine, 'machine');
    const parsed = Machine.safeParse({ ...machine, state: 'free' });
    if (!parsed.success) {
      throw new InvalidInputError(
        `machine ${displayValue(machine.machine)} is not valid`,
        parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    }
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: parsed.data,
          ConditionExpression: 'attribute_not_exists(#m)',
          ExpressionAttributeNames: { '#m': 'machine' },
        }),
      );
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      throw new ConflictError(
        `pool "${machine.pool}" already has a machine "${machine.machine}"`,
        undefined,
        {
          cause: e,
        },
      );
    }
    return parsed.data;
  }

  async get(pool: string, machine: string): Promise<Machine | undefined> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { pool, machine }, ConsistentRead: true }),
    );
    return out.Item === undefined ? undefined : Machine.parse(out.Item);
  }

  async list(pool: string): Promise<Machine[]> {
    checkName(pool, 'pool');
    const machines: Machine[] = [];
    const pages = paginateQuery(
      { client: this.ddb },
      {
        TableName: this.tableName,
        KeyConditionExpression: '#p = :p',
        ExpressionAttributeNames: { '#p': 'pool' },
        ExpressionAttributeValues: { ':p': pool },
        ConsistentRead: true,
      },
    );
    for await (const page of pages) for (const item of page.Items ?? []) machines.push(Machine.parse(item));
    return machines;
  }

  /**
   * A free machine of the pool, now held by `operation`; the one it already holds when it asks
   * again (a retried step). Each attempt is a conditional write on one machine's state, so of two
   * operations that read the same free machine only one takes it, and the other tries the next.
   */
  async take(pool: string, operation: string): Promise<Machine> {
    checkName(operation, 'operation');
    const machines = await this.list(pool);
    const held = machines.find((m) => m.state === 'held' && m.holder === operation);
    if (held !== undefined) return held;
    for (const candidate of machines.filter((m) => m.state === 'free')) {
      const heldAt = this.now().toISOString();
      try {
        await this.ddb.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { pool, machine: candidate.machine },
            UpdateExpression: 'SET #s = :held, #h = :op, #t = :t',
            ConditionExpression: '#s = :free',
            ExpressionAttributeNames: { '#s': 'state', '#h': 'holder', '#t': 'heldAt' },
            ExpressionAttributeValues: { ':held': 'held', ':free': 'free', ':op': operation, ':t': heldAt },
          }),
        );
        return { ...candidate, state: 'held', holder: operation, heldAt };
      } catch (e) {
        if (!isConditionFailure(e)) throw e;
      }
    }
    throw new PoolExhaustedError(pool);
  }

  /**
   * Gives the machine back to its pool if `operation` holds it. Returns false, changing nothing,
   * when it does not (already released, or taken since by another operation).
   */
  async release(pool: string, machine: string, operation: string): Promise<boolean> {
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pool, machine },
          UpdateExpression: 'SET #s = :free REMOVE #h, #t',
          ConditionExpression: '#s = :held AND #h = :op',
          ExpressionAttributeNames: { '#s': 'state', '#h': 'holder', '#t': 'heldAt' },
          ExpressionAttributeValues: { ':held': 'held', ':free': 'free', ':op': operation },
        }),
      );
      return true;
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      return false;
    }
  }
}

/** Opens a transport to a machine; the composition root holds the credentials. */
export type Connect = (access: HostAccess) => Promise<Transport>;

/**
 * The platform snapshot of a bare-metal machine: a Persona snapshot of the paths and state the
 * plan touches, taken and restored over the machine's transport by the snapshot store.
 */
export interface HostSnapshots {
  snapshot(host: ProvisionedHost, transport: Transport, scope: SnapshotScope): Promise<string>;
  restore(host: ProvisionedHost, transport: Transport, id: string): Promise<void>;
}

export interface BareMetalDeps {
  readonly inventory: BareMetalInventory;
  readonly connect: Connect;
  readonly snapshots: HostSnapshots;
  /** The pool a request without a `pool` parameter takes from. */
  readonly defaultPool?: string;
}

export class BareMetalAdaptor implements PlatformAdaptor {
  readonly platform = 'baremetal' as const;

  constructor(private readonly deps: BareMetalDeps) {}

  async provision(request: ProvisionRequest): Promise<ProvisionHandle> {
    const pool = request.parameters?.pool ?? this.deps.defaultPool;
    if (pool === undefined) {
      throw new InvalidInputError('a bare-metal target needs a pool', [
        { path: 'parameters.pool', message: 'required: the pool to take a machine from' },
      ]);
    }
    const machine = await this.deps.inventory.take(pool, request.operation);
    return { platform: 'baremetal', operation: request.operation, id: machine.machine, scope: pool };
  }

  /** A pooled machine exists already: it is ready as soon as it is held. */
  async poll(handle: ProvisionHandle): Promise<ProvisionStatus> {
    const machine = await this.deps.inventory.get(handle.scope, handle.id);
    if (machine === undefined)
      return { state: 'failed', reason: `machine "${handle.id}" left pool "${handle.scope}"` };
    if (machine.state !== 'held' || machine.holder !== handle.operation) {
      return {
        state: 'failed',
        reason: `machine "${handle.id}" is no longer held by operation ${handle.operation}`,
      };
    }
    const access: HostAccess = {
      transport: 'ssh',
      address: machine.address,
      port: machine.port,
      user: machine.user,
      ...(machine.hostKeyFingerprint === undefined ? {} : { hostKeyFingerprint: machine.hostKeyFingerprint }),
    };
    return { state: 'ready', host: { ...handle, access } };
  }

  async snapshot(host: ProvisionedHost, scope: SnapshotScope): Promise<PlatformSnapshotRef> {
    const transport = await this.transport(host);
    try {
      const id = await this.deps.snapshots.snapshot(host, transport, scope);
      return { platform: 'baremetal', id, host: host.id };
    } finally {
      await transport.close();
    }
  }

  async restore(host: ProvisionedHost, snapshot: PlatformSnapshotRef): Promise<void> {
    if (snapshot.platform !== 'baremetal' || snapshot.host !== host.id) {
      throw new InvalidInputError(`snapshot ${snapshot.id} is not one of machine "${host.id}"`, [
        { path: 'snapshot', message: `taken of ${snapshot.platform} host "${snapshot.host}"` },
      ]);
    }
    const transport = await this.transport(host);
    try {
      await this.deps.snapshots.restore(host, transport, snapshot.id);
    } finally {
      await transport.close();
    }
  }

  async resize(_host: ProvisionedHost, size: string): Promise<ResizeResult> {
    return { state: 'unsupported', reason: `a physical machine cannot be resized to ${displayValue(size)}` };
  }

  /** Returns the machine to its pool; the machine itself is left running. */
  async terminate(handle: ProvisionHandle): Promise<void> {
    await this.deps.inventory.release(handle.scope, handle.id, handle.operation);
  }

  async transport(host: ProvisionedHost): Promise<Transport> {
    if (host.platform !== 'baremetal') {
      throw new NotFoundError(`host ${host.id} is not a bare-metal machine`, host.id);
    }
    return this.deps.connect(host.access);
  }
}
