// API Gateway methods of a deployed Persona use IAM authorisation: requests are signed with
// the caller's credentials from the usual chain (environment, profile, SSO, instance role),
// for the region the API is in. Loaded only when a request is signed: the AWS SDK's
// credential chain is the slowest thing the CLI can load.
import { createHash, createHmac } from 'node:crypto';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';

class Sha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash =
      secret === undefined
        ? createHash('sha256')
        : createHmac('sha256', typeof secret === 'string' ? secret : Buffer.from(secret as ArrayBuffer));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(typeof data === 'string' ? data : Buffer.from(data as ArrayBuffer));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

export async function signRequest(request: {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string | undefined;
  region: string;
  credentials?: ConstructorParameters<typeof SignatureV4>[0]['credentials'];
}): Promise<Record<string, string>> {
  const signer = new SignatureV4({
    service: 'execute-api',
    region: request.region,
    credentials: request.credentials ?? defaultProvider(),
    sha256: Sha256,
  });
  const query: Record<string, string> = {};
  for (const [k, v] of request.url.searchParams) query[k] = v;
  const signed = await signer.sign({
    method: request.method,
    protocol: request.url.protocol,
    hostname: request.url.hostname,
    ...(request.url.port ? { port: Number(request.url.port) } : {}),
    path: request.url.pathname,
    query,
    headers: { ...request.headers, host: request.url.host },
    ...(request.body === undefined ? {} : { body: request.body }),
  });
  return signed.headers as Record<string, string>;
}
