// API Gateway methods of a deployed Persona use IAM authorisation: requests are signed with
// the caller's credentials from the usual chain (environment, profile, SSO, instance role).
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

/** The region of an execute-api URL (https://abc.execute-api.eu-west-1.amazonaws.com/v1). */
export function regionOf(url: URL): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/.exec(url.hostname)?.[1];
}

export async function signRequest(request: {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string | undefined;
  region?: string;
  credentials?: ConstructorParameters<typeof SignatureV4>[0]['credentials'];
}): Promise<Record<string, string>> {
  const region = request.region ?? process.env.AWS_REGION ?? regionOf(request.url) ?? 'us-east-1';
  const signer = new SignatureV4({
    service: 'execute-api',
    region,
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
