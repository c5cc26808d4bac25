// Which region a request to a deployed stage is signed for. A signature scoped to another
// region than the API's is refused by API Gateway (403), so the endpoint's own host name
// decides when it names a region; a custom domain names none, and the caller's configured
// region (AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`) is used instead.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidInputError } from '../core/errors.js';

const REGION = '[a-z]{2}(?:-[a-z]+)+-\\d{1,2}';
// The whole host name, anchored: `{api}.execute-api.{region}.amazonaws.com`, its private
// (VPC endpoint) forms and the China partition. Only the host is read, never the path or the
// query, where anyone may write a region-like string.
const EXECUTE_API = new RegExp(
  `^[a-z0-9]+(?:-vpce-[a-z0-9]+)?\\.execute-api\\.(${REGION})\\.(?:vpce\\.)?amazonaws\\.com(?:\\.cn)?$`,
);

/** The region of an execute-api URL (https://abc.execute-api.eu-west-1.amazonaws.com/v1). */
export function regionOf(url: URL): string | undefined {
  return EXECUTE_API.exec(url.hostname.toLowerCase())?.[1];
}

/** Whether requests to this endpoint are signed without being asked: AWS's own host names. */
export function isAwsHost(url: URL): boolean {
  return /\.amazonaws\.com(?:\.cn)?$/.test(url.hostname.toLowerCase());
}

/** The `region` of the profile in the shared config file, if it names one. */
export function profileRegion(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const file = env.AWS_CONFIG_FILE || join(env.HOME || homedir(), '.aws', 'config');
  const profile = env.AWS_PROFILE || env.AWS_DEFAULT_PROFILE || 'default';
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  let inProfile = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const section = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (section) {
      const name = (section[1] as string).replace(/^profile\s+/, '');
      inProfile = name === profile;
      continue;
    }
    const setting = /^region\s*=\s*(\S+)$/.exec(line);
    if (inProfile && setting) return setting[1];
  }
  return undefined;
}

/**
 * The region to sign for: `--region` when given, else the endpoint's own, else the caller's
 * configured region. Without any, the request is not sent: a guess would be refused as a 403
 * that says nothing about regions.
 */
export function signingRegion(url: URL, explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const region = explicit || regionOf(url) || env.AWS_REGION || env.AWS_DEFAULT_REGION || profileRegion(env);
  if (!region)
    throw new InvalidInputError(`cannot tell which region ${url.host} is in`, [
      { path: '--region', message: 'give --region, or set AWS_REGION or a region in your AWS profile' },
    ]);
  return region;
}
