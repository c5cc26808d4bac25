// Differential probes, as Diffy does them: every request goes to the source twice and to the
// candidate once. What differs between the two source answers is noise (a timestamp, a request
// id); a field is reported only when the candidate differs from the source beyond that noise.
import { InvalidInputError, type Issue } from '../errors.js';
import {
  endpointLabel,
  type HttpEndpoint,
  HttpFailure,
  type HttpResponseData,
  httpExchange,
} from './http.js';
import type { FieldDifference, ProbeReport } from './report.js';
import { isRequestPath, truncate } from './text.js';

export interface ProbeRequest {
  /** GET or HEAD unless `allowUnsafeMethods`: a probe must not change the source. Default GET. */
  readonly method?: string;
  /** Path and query, starting with `/`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface ProbeOptions {
  readonly source: HttpEndpoint;
  readonly candidate: HttpEndpoint;
  readonly requests: readonly ProbeRequest[];
  /** Each request is sent this many times; more samples make the noise better known. Default 1. */
  readonly repeat?: number;
  /** Response headers compared (lower case); the others, such as Date and Server, are not. */
  readonly headers?: readonly string[];
  readonly allowUnsafeMethods?: boolean;
  /** Per exchange. Default 5 s. */
  readonly timeoutMs?: number;
  /** Diffy's defaults: beyond noise by more than 20 % of the differences and 0.03 % of the samples. */
  readonly relativeThresholdPercent?: number;
  readonly absoluteThresholdPercent?: number;
}

export const DEFAULT_COMPARED_HEADERS = [
  'content-type',
  'content-encoding',
  'content-language',
  'location',
  'cache-control',
  'vary',
] as const;
export const SAFE_METHODS = ['GET', 'HEAD'] as const;
/** Each request costs three exchanges; a probe run is a check, not a load test. */
export const MAX_PROBE_REQUESTS = 500;
const VALUE_LENGTH = 200;

interface Field {
  /** What is compared. */
  readonly value: string;
  /** What a report shows. */
  readonly shown: string;
}

interface Tally {
  readonly request: string;
  readonly field: string;
  samples: number;
  differences: number;
  noise: number;
  source?: string;
  candidate?: string;
}

export async function runProbes(options: ProbeOptions): Promise<ProbeReport> {
  const requests = checkRequests(options);
  const relative = options.relativeThresholdPercent ?? 20;
  const absolute = options.absoluteThresholdPercent ?? 0.03;
  const compared = (options.headers ?? DEFAULT_COMPARED_HEADERS).map((h) => h.toLowerCase());
  const timeoutMs = options.timeoutMs ?? 5000;
  const tallies = new Map<string, Tally>();

  for (const request of requests) {
    const label = `${request.method} ${request.path}`;
    const exchange = {
      method: request.method,
      path: request.path,
      ...(request.headers ? { headers: request.headers } : {}),
    };
    const probe = async (endpoint: HttpEndpoint) =>
      fieldsOf(await answer(endpoint, exchange, timeoutMs), compared);
    // The source twice first: its own disagreement is what the candidate is allowed.
    const first = await probe(options.source);
    const second = await probe(options.source);
    const candidate = await probe(options.candidate);
    for (const name of new Set([...first.keys(), ...second.keys(), ...candidate.keys()])) {
      const key = `${label}\u0000${name}`;
      const tally = tallies.get(key) ?? { request: label, field: name, samples: 0, differences: 0, noise: 0 };
      tallies.set(key, tally);
      const a = first.get(name);
      const b = second.get(name);
      const c = candidate.get(name);
      tally.samples++;
      if (a?.value !== b?.value) tally.noise++;
      if (a?.value !== c?.value) {
        tally.differences++;
        if (tally.source === undefined) {
          tally.source = a?.shown ?? '(absent)';
          tally.candidate = c?.shown ?? '(absent)';
        }
      }
    }
  }

  const differences: FieldDifference[] = [];
  const noisyFields: { request: string; field: string }[] = [];
  for (const t of tallies.values()) {
    if (t.noise > 0) noisyFields.push({ request: t.request, field: t.field });
    const beyond = t.differences - t.noise;
    if (beyond <= 0) continue;
    if ((beyond / t.differences) * 100 <= relative || (beyond / t.samples) * 100 <= absolute) continue;
    differences.push({
      request: t.request,
      field: t.field,
      source: t.source ?? '',
      candidate: t.candidate ?? '',
      samples: t.samples,
      differences: t.differences,
      noise: t.noise,
    });
  }
  return {
    passed: differences.length === 0,
    requests: requests.length,
    differences,
    noisyFields,
    thresholds: { relativePercent: relative, absolutePercent: absolute },
  };
}

interface CheckedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
}

function checkRequests(options: ProbeOptions): CheckedRequest[] {
  const issues: Issue[] = [];
  const repeat = options.repeat ?? 1;
  if (!Number.isInteger(repeat) || repeat < 1)
    issues.push({ path: 'repeat', message: 'must be a positive integer' });
  const checked: CheckedRequest[] = [];
  options.requests.forEach((r, i) => {
    const method = (r.method ?? 'GET').toUpperCase();
    if (!/^[A-Z]+$/.test(method))
      issues.push({ path: `requests[${i}].method`, message: `"${r.method}" is not a method` });
    else if (!options.allowUnsafeMethods && !(SAFE_METHODS as readonly string[]).includes(method))
      issues.push({
        path: `requests[${i}].method`,
        message: `${method} may change the source; only GET and HEAD are probed unless unsafe methods are allowed`,
      });
    if (!isRequestPath(r.path))
      issues.push({
        path: `requests[${i}].path`,
        message: 'must start with / and hold no spaces or control characters',
      });
    checked.push({ method, path: r.path, ...(r.headers ? { headers: r.headers } : {}) });
  });
  const total = checked.length * repeat;
  if (total > MAX_PROBE_REQUESTS)
    issues.push({
      path: 'requests',
      message: `${total} probe requests, more than the ${MAX_PROBE_REQUESTS} allowed`,
    });
  if (issues.length)
    throw new InvalidInputError(
      `probe requests refused: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    );
  return Array.from({ length: repeat }, () => checked).flat();
}

async function answer(
  endpoint: HttpEndpoint,
  exchange: CheckedRequest,
  timeoutMs: number,
): Promise<HttpResponseData | HttpFailure> {
  try {
    return await httpExchange(endpoint, exchange, { timeoutMs });
  } catch (error) {
    if (error instanceof HttpFailure) return error;
    throw new HttpFailure(
      `${exchange.method} ${endpointLabel(endpoint, exchange.path)} failed`,
      'protocol',
      'error',
      {
        cause: error,
      },
    );
  }
}

/** The fields of an answer, by name: `status`, `header:<name>`, `body` or, for JSON, one per leaf. */
export function fieldsOf(
  answer: HttpResponseData | HttpFailure,
  headers: readonly string[],
): Map<string, Field> {
  const fields = new Map<string, Field>();
  const put = (name: string, value: string) =>
    fields.set(name, { value, shown: truncate(value, VALUE_LENGTH) });
  if (answer instanceof HttpFailure) {
    put('error', answer.reason);
    return fields;
  }
  put('status', String(answer.status));
  for (const h of headers) {
    const v = answer.headers[h];
    if (v !== undefined) put(`header:${h}`, Array.isArray(v) ? v.join(', ') : v);
  }
  const json = answer.bodyTruncated ? undefined : parseJson(answer.body);
  if (json !== undefined) {
    put('body.type', 'json');
    flatten(json.value, '$', put);
  } else {
    put('body.type', answer.bodyBytes === 0 ? 'empty' : 'other');
    const preview = truncate(answer.body.subarray(0, 256).toString('utf8'), 60);
    fields.set('body', {
      value: answer.bodySha256,
      shown: `sha256:${answer.bodySha256.slice(0, 16)}… (${answer.bodyBytes} bytes) ${JSON.stringify(preview)}`,
    });
  }
  return fields;
}

function parseJson(body: Buffer): { value: unknown } | undefined {
  const text = body.toString('utf8').trim();
  if (!text.startsWith('{') && !text.startsWith('[')) return undefined;
  try {
    return { value: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

function flatten(value: unknown, path: string, put: (name: string, value: string) => void): void {
  if (Array.isArray(value) && value.length > 0) {
    for (const [i, v] of value.entries()) flatten(v, `${path}[${i}]`, put);
    return;
  }
  if (value !== null && typeof value === 'object' && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value))
      flatten(v, /^[A-Za-z_$][\w$]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`, put);
    return;
  }
  put(`json:${path}`, JSON.stringify(value));
}
