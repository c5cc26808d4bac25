import type { Acknowledgment, CfnResource } from 'aws-cdk-lib';
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type {
  BucketDefinition,
  IndexDefinition,
  KeyAttribute,
  TableDefinition,
} from '../core/storage/definitions.js';
import { DATA_BUCKET, TABLES } from '../core/storage/definitions.js';
import type { DataGrants, ObjectAccess } from './permissions.js';

// The wildcard action groups that Bucket.grantRead / grantReadWrite and the KMS grants they imply
// put in a policy. cdk-nag reports each one; the nag test fails if CDK's grants change.
const S3_READ_ACTIONS = ['s3:GetObject*', 's3:GetBucket*', 's3:List*'] as const;
const S3_PUT_ACTIONS = ['s3:Abort*'] as const;
const KMS_WRITE_ACTIONS = ['kms:GenerateDataKey*', 'kms:ReEncrypt*'] as const;

/** How the tables are billed (PersonaPlatformProps.tableBilling). */
export interface TableBilling {
  /** @default dynamodb.BillingMode.PAY_PER_REQUEST */
  readonly billingMode?: dynamodb.BillingMode;
  /**
   * Read and write capacity units of every table and of each of its indexes, with PROVISIONED
   * billing only. @default 5 each
   */
  readonly readCapacity?: number;
  readonly writeCapacity?: number;
  /** Capacity of particular tables (and their indexes) by id, e.g. `Profiles`; PROVISIONED only. */
  readonly tables?: Readonly<
    Record<string, { readonly readCapacity?: number; readonly writeCapacity?: number }>
  >;
}

export interface PersonaStorageProps {
  /**
   * What happens to the tables, buckets and key when they leave the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Refuse `DeleteTable` on the tables, whatever the stack does.
   * @default true unless `removalPolicy` is DESTROY
   */
  readonly deletionProtection?: boolean;
  /**
   * Customer-managed key for tables and the data bucket. Bring your own to share one key across
   * stacks or to manage its policy centrally; it should have rotation enabled.
   * @default a new key with yearly rotation
   */
  readonly encryptionKey?: kms.IKey;
  /**
   * The table descriptions to build. The embedded runtime reads the same list.
   * @default TABLES
   */
  readonly tables?: readonly TableDefinition[];
  /**
   * The data bucket's description.
   * @default DATA_BUCKET
   */
  readonly dataBucket?: BucketDefinition;
  /**
   * An existing bucket to keep Persona's data in instead of a new one: Persona writes under its
   * own prefixes (`profiles/`, `snapshots/`, ...). Import it with its key
   * (`Bucket.fromBucketAttributes(scope, id, { bucketArn, encryptionKey })`) when it is
   * encrypted with a customer-managed key, so that the functions are granted that key.
   * @default a new versioned bucket under Persona's key, its access logged
   */
  readonly bucket?: s3.IBucket;
  /** @default on demand */
  readonly tableBilling?: TableBilling;
  /**
   * How long server access logs of the data bucket are kept.
   * @default 365 days
   */
  readonly accessLogsExpiration?: Duration;
}

/** The tables, the data bucket and the key that encrypts both. */
export class PersonaStorage extends Construct {
  readonly key: kms.IKey;
  /** Tables by their definition id (e.g. `Profiles`). */
  readonly tables: Readonly<Record<string, dynamodb.Table>>;
  /** The data bucket: Persona's own, or the one given in `bucket`. */
  readonly bucket: s3.IBucket;
  readonly accessLogsBucket: s3.Bucket;

  private readonly tableEnv: readonly (readonly [string, dynamodb.Table, TableDefinition])[];
  private readonly bucketEnv: string;
  private readonly bucketPrefixes: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: PersonaStorageProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const deletionProtection = props.deletionProtection ?? removalPolicy !== RemovalPolicy.DESTROY;
    const tableDefinitions = props.tables ?? TABLES;
    const bucketDefinition = props.dataBucket ?? DATA_BUCKET;
    const billing = tableBilling(props.tableBilling, tableDefinitions);

    this.key =
      props.encryptionKey ??
      new kms.Key(this, 'Key', {
        description: 'Persona data at rest: tables and the data bucket',
        enableKeyRotation: true,
        removalPolicy,
      });

    const tables: Record<string, dynamodb.Table> = {};
    const tableEnv: (readonly [string, dynamodb.Table, TableDefinition])[] = [];
    for (const definition of tableDefinitions) {
      // Table rather than TableV2: TableV2 cannot render a customer-managed key in a region-agnostic
      // stack, and the stack stays region-agnostic so that synth needs no AWS account.
      const table = new dynamodb.Table(this, definition.id, {
        ...tableKeys(definition),
        ...billing(definition.id),
        encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryptionKey: this.key,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        deletionProtection,
        removalPolicy,
        ...(definition.timeToLiveAttribute ? { timeToLiveAttribute: definition.timeToLiveAttribute } : {}),
      });
      for (const index of definition.globalSecondaryIndexes)
        table.addGlobalSecondaryIndex({ ...indexProps(index), ...indexCapacity(billing(definition.id)) });
      tables[definition.id] = table;
      tableEnv.push([definition.env, table, definition]);
    }
    this.tables = tables;
    this.tableEnv = tableEnv;

    this.accessLogsBucket = new s3.Bucket(this, `${bucketDefinition.id}AccessLogs`, {
      // S3 delivers server access logs only to buckets encrypted with S3-managed keys.
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      versioned: true,
      removalPolicy,
      lifecycleRules: [
        {
          expiration: props.accessLogsExpiration ?? Duration.days(365),
          noncurrentVersionExpiration: Duration.days(30),
        },
      ],
    });
    Validations.of(this.accessLogsBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        "This bucket receives the data bucket's server access logs; logging its own access would need yet another log bucket, or loop into itself.",
    });

    this.bucket =
      props.bucket ??
      // (isWebsite, as above)
      (new s3.Bucket(this, bucketDefinition.id, {
        encryption: s3.BucketEncryption.KMS,
        encryptionKey: this.key,
        // One data key per bucket instead of one KMS call per object: chunks are many and small.
        bucketKeyEnabled: true,
        enforceSSL: true,
        minimumTLSVersion: 1.2,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned: true,
        // Bucket's `isWebsite` getter returns `boolean | undefined`, which exactOptionalPropertyTypes
        // does not accept for IBucket's optional `isWebsite`; the object is the same.
        serverAccessLogsBucket: this.accessLogsBucket as s3.IBucket,
        serverAccessLogsPrefix: `${bucketDefinition.id.toLowerCase()}/`,
        removalPolicy,
      }) as s3.IBucket);
    this.bucketEnv = bucketDefinition.env;
    this.bucketPrefixes = bucketDefinition.prefixes;
  }

  /**
   * Gives a function the names of the tables and the bucket it works with, and exactly the
   * permissions `grants` lists: each table read or read-write, each prefix of the bucket read
   * and/or put (never delete), and the key's matching actions (which the grants include).
   */
  connect(fn: lambda.Function, grants: DataGrants): void {
    const acknowledgements: Acknowledgment[] = [];
    const known = new Set(this.tableEnv.map(([, , definition]) => definition.id));
    for (const id of Object.keys(grants.tables ?? {})) {
      if (!known.has(id)) throw new Error(`${fn.node.path} is granted table ${id}, which is not built`);
    }
    for (const [env, table, definition] of this.tableEnv) {
      const access = grants.tables?.[definition.id];
      if (access === undefined) continue;
      fn.addEnvironment(env, table.tableName);
      if (access === 'read') table.grantReadData(fn);
      else table.grantReadWriteData(fn);
      if (definition.globalSecondaryIndexes.length > 0) {
        acknowledgements.push({
          id: `AwsSolutions-IAM5[Resource::${arnOf(table)}/index/*]`,
          reason: `Queries go through the ${definition.id} table's own secondary indexes; the wildcard covers that table's indexes only.`,
        });
      }
    }
    const writesTables = Object.values(grants.tables ?? {}).includes('read-write');
    let writesObjects = false;
    if (grants.objects !== undefined) {
      fn.addEnvironment(this.bucketEnv, this.bucket.bucketName);
      const s3Actions = new Set<string>();
      for (const [prefix, access] of Object.entries(grants.objects) as [string, ObjectAccess][]) {
        if (!(prefix in this.bucketPrefixes)) {
          throw new Error(`${fn.node.path} is granted ${prefix}, which is not a prefix of the data bucket`);
        }
        if (access === 'read' || access === 'read-write') {
          this.bucket.grantRead(fn, `${prefix}*`);
          for (const action of S3_READ_ACTIONS) s3Actions.add(action);
        }
        if (access === 'write' || access === 'read-write') {
          this.bucket.grantPut(fn, `${prefix}*`);
          for (const action of S3_PUT_ACTIONS) s3Actions.add(action);
          writesObjects = true;
        }
        acknowledgements.push({
          id: `AwsSolutions-IAM5[Resource::${arnOf(this.bucket)}/${prefix}*]`,
          reason: `Object keys under ${prefix} are content-addressed and created at run time, so access is to that prefix of this one bucket rather than to named keys.`,
        });
      }
      for (const action of s3Actions) {
        acknowledgements.push({
          id: `AwsSolutions-IAM5[Action::${action}]`,
          reason: `${action} is one of the action groups the bucket's grant methods use; it is allowed on this one bucket and the prefixes the function uses only.`,
        });
      }
    }
    if (writesTables || writesObjects) {
      for (const action of KMS_WRITE_ACTIONS) {
        acknowledgements.push({
          id: `AwsSolutions-IAM5[Action::${action}]`,
          reason: `${action} comes from the grant methods and is allowed on Persona's one customer-managed key only; S3 and DynamoDB call its variants on the function's behalf to encrypt new data.`,
        });
      }
    }
    if (acknowledgements.length === 0) return;
    if (!fn.role) throw new Error(`${fn.node.path} has no role to grant data access to`);
    Validations.of(fn.role).acknowledge(...acknowledgements);
  }
}

/**
 * How cdk-nag spells a resource's ARN in its findings: `<LogicalId.Arn>` for one of this stack,
 * the ARN itself (intrinsics as `<AWS::Partition>`) for an imported bucket.
 */
function arnOf(construct: Construct): string {
  const resource = construct.node.defaultChild as CfnResource | undefined;
  if (resource) return `<${Stack.of(construct).resolve(resource.logicalId)}.Arn>`;
  return nagSpelling(Stack.of(construct).resolve((construct as s3.IBucket).bucketArn));
}

function nagSpelling(value: unknown): string {
  if (typeof value === 'string') return value;
  const intrinsic = value as Record<string, unknown>;
  if (typeof intrinsic.Ref === 'string') return `<${intrinsic.Ref}>`;
  const getAtt = intrinsic['Fn::GetAtt'];
  if (Array.isArray(getAtt)) return `<${getAtt.join('.')}>`;
  const join = intrinsic['Fn::Join'];
  if (Array.isArray(join)) return (join[1] as unknown[]).map(nagSpelling).join(join[0] as string);
  return JSON.stringify(value);
}

type TableCapacity = Pick<dynamodb.TableProps, 'billingMode' | 'readCapacity' | 'writeCapacity'>;

/** Each table's billing, every capacity checked: a bad one names the field, before anything is built. */
function tableBilling(
  billing: TableBilling | undefined,
  definitions: readonly TableDefinition[],
): (id: string) => TableCapacity {
  const mode = billing?.billingMode ?? dynamodb.BillingMode.PAY_PER_REQUEST;
  const known = new Set(definitions.map((d) => d.id));
  for (const id of Object.keys(billing?.tables ?? {})) {
    if (!known.has(id))
      throw new Error(
        `tableBilling.tables.${id}: there is no table ${id} (tables: ${[...known].join(', ')})`,
      );
  }
  const units = (value: number | undefined, field: string): number => {
    if (value === undefined) return 5;
    if (!Number.isInteger(value) || value < 1)
      throw new Error(`${field} must be a whole number of capacity units, at least 1, not ${value}`);
    return value;
  };
  if (mode === dynamodb.BillingMode.PAY_PER_REQUEST) {
    const given = [
      ...(billing?.readCapacity !== undefined ? ['tableBilling.readCapacity'] : []),
      ...(billing?.writeCapacity !== undefined ? ['tableBilling.writeCapacity'] : []),
      ...Object.keys(billing?.tables ?? {}).map((id) => `tableBilling.tables.${id}`),
    ];
    if (given.length > 0)
      throw new Error(
        `${given.join(', ')}: capacity applies to PROVISIONED billing only, and billingMode is PAY_PER_REQUEST`,
      );
    return () => ({ billingMode: mode });
  }
  const readCapacity = units(billing?.readCapacity, 'tableBilling.readCapacity');
  const writeCapacity = units(billing?.writeCapacity, 'tableBilling.writeCapacity');
  const capacities = new Map<string, TableCapacity>();
  for (const definition of definitions) {
    const own = billing?.tables?.[definition.id];
    const field = `tableBilling.tables.${definition.id}`;
    capacities.set(definition.id, {
      billingMode: mode,
      readCapacity:
        own?.readCapacity !== undefined ? units(own.readCapacity, `${field}.readCapacity`) : readCapacity,
      writeCapacity:
        own?.writeCapacity !== undefined ? units(own.writeCapacity, `${field}.writeCapacity`) : writeCapacity,
    });
  }
  return (id) => capacities.get(id) ?? { billingMode: mode, readCapacity, writeCapacity };
}

function indexCapacity(
  capacity: TableCapacity,
): Pick<dynamodb.GlobalSecondaryIndexProps, 'readCapacity' | 'writeCapacity'> {
  if (capacity.billingMode !== dynamodb.BillingMode.PROVISIONED) return {};
  return {
    ...(capacity.readCapacity !== undefined ? { readCapacity: capacity.readCapacity } : {}),
    ...(capacity.writeCapacity !== undefined ? { writeCapacity: capacity.writeCapacity } : {}),
  };
}

function attribute(key: KeyAttribute): dynamodb.Attribute {
  const types: Record<KeyAttribute['type'], dynamodb.AttributeType> = {
    S: dynamodb.AttributeType.STRING,
    N: dynamodb.AttributeType.NUMBER,
    B: dynamodb.AttributeType.BINARY,
  };
  return { name: key.name, type: types[key.type] };
}

function tableKeys(definition: TableDefinition): Pick<dynamodb.TableProps, 'partitionKey' | 'sortKey'> {
  return {
    partitionKey: attribute(definition.partitionKey),
    ...(definition.sortKey ? { sortKey: attribute(definition.sortKey) } : {}),
  };
}

function indexProps(index: IndexDefinition): dynamodb.GlobalSecondaryIndexProps {
  const projection =
    index.projection === 'ALL'
      ? { projectionType: dynamodb.ProjectionType.ALL }
      : index.projection === 'KEYS_ONLY'
        ? { projectionType: dynamodb.ProjectionType.KEYS_ONLY }
        : { projectionType: dynamodb.ProjectionType.INCLUDE, nonKeyAttributes: [...index.projection] };
  return {
    indexName: index.indexName,
    partitionKey: attribute(index.partitionKey),
    ...(index.sortKey ? { sortKey: attribute(index.sortKey) } : {}),
    ...projection,
  };
}
