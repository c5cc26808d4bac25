// The Profile's health checks, run against a clone: HTTP and TCP from the control side to the
// clone's address, commands and process counts on the clone through its Transport. Every check
// has a time-out, and a check that fails or times out is a result, never an exception.
import { connect } from 'node:net';
import type { z } from 'zod';
import { InvalidInputError } from '../errors.js';
import type { HealthCheck as HealthCheckSchema } from '../profile/schema.js';
import type { Transport } from '../transport/transport.js';
import { endpointLabel, HttpFailure, httpExchange } from './http.js';
import type { HealthCheckResult, HealthReport } from './report.js';
import { truncate } from './text.js';

export type HealthCheck = z.infer<typeof HealthCheckSchema>;

export interface HealthCheckDeps {
  /** Reaches the clone; command and process checks run through it. */
  readonly transport: Transport;
}

export interface HealthCheckOptions {
  /**
   * The clone's address as the control side reaches it. HTTP and TCP checks dial it whatever host
   * the check names: a Profile's checks speak of the source's own names and addresses, which on
   * the clone are the clone's (identity is translated, not copied).
   */
  readonly address: string;
  /** Process checks carry no time-out of their own. Default 10 s. */
  readonly processTimeoutMs?: number;
  /** HTTPS certificate verification for HTTP checks. Default true. */
  readonly verifyTls?: boolean;
}

// /proc/<pid>/comm of every process but this shell itself, one per line. Fixed text, no value
// of the check in it: the name is compared on the control side.
const LIST_PROCESS_NAMES =
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
  'for d in /proc/[0-9]*; do [ "${d#/proc/}" = "$$" ] && continue; IFS= read -r c < "$d/comm" && printf \'%s\\n\' "$c"; done 2>/dev/null; exit 0';

// The kernel keeps 15 bytes of a process name (TASK_COMM_LEN less the NUL).
const COMM_LENGTH = 15;

// A transport that does not honour its time-out (or a connection that hangs) still ends here.
const DEADLINE_GRACE_MS = 2000;

export async function runHealthChecks(
  deps: HealthCheckDeps,
  checks: readonly HealthCheck[],
  options: HealthCheckOptions,
): Promise<HealthReport> {
  if (options.address.trim() === '' || /[\s/@]/.test(options.address))
    throw new InvalidInputError(`health check address "${options.address}" is not a host name or address`, [
      { path: 'address', message: 'not a host name or address' },
    ]);
  const results: HealthCheckResult[] = [];
  // One after another: a clone just started should not be stormed by its own checks.
  for (const check of checks) results.push(await runOne(deps, check, options));
  return { passed: results.every((r) => r.passed), results };
}

async function runOne(
  deps: HealthCheckDeps,
  check: HealthCheck,
  options: HealthCheckOptions,
): Promise<HealthCheckResult> {
  const started = performance.now();
  const timeoutMs = 'timeoutMs' in check ? check.timeoutMs : (options.processTimeoutMs ?? 10_000);
  const target = targetOf(deps, check, options);
  const base = { name: check.name, type: check.type, target };
  try {
    const outcome = await withDeadline(
      evaluate(deps, check, options, timeoutMs),
      timeoutMs + DEADLINE_GRACE_MS,
    );
    return { ...base, ...outcome, durationMs: elapsed(started) };
  } catch (error) {
    return {
      ...base,
      passed: false,
      observed: {},
      reason: error instanceof Error ? error.message : String(error),
      durationMs: elapsed(started),
    };
  }
}

type Outcome = Pick<HealthCheckResult, 'passed' | 'observed'> & { reason?: string };

async function evaluate(
  deps: HealthCheckDeps,
  check: HealthCheck,
  options: HealthCheckOptions,
  timeoutMs: number,
): Promise<Outcome> {
  switch (check.type) {
    case 'http':
      return httpCheck(check, options, timeoutMs);
    case 'tcp':
      return tcpCheck(options.address, check.port, timeoutMs);
    case 'command': {
      // The command is the Profile author's own shell text, the one thing of a Profile meant to
      // run as code (capture never writes command checks); the transport runs it with `sh -c`.
      const result = await deps.transport.run(check.command, { timeoutMs });
      const output = truncate(`${result.stdout}${result.stderr}`.trim(), 500, 'tail');
      const passed = result.exitCode === check.expectExitCode;
      return {
        passed,
        observed: { exitCode: result.exitCode, ...(output ? { output } : {}) },
        ...(passed ? {} : { reason: `exit code ${result.exitCode}, expected ${check.expectExitCode}` }),
      };
    }
    case 'process': {
      const result = await deps.transport.run(LIST_PROCESS_NAMES, { timeoutMs });
      const wanted = check.process.slice(0, COMM_LENGTH);
      const count = result.stdout.split('\n').filter((line) => line === wanted).length;
      const passed = count >= check.minCount;
      return {
        passed,
        observed: { processCount: count },
        ...(passed
          ? {}
          : {
              reason: `${count} processes named ${check.process} running, expected at least ${check.minCount}`,
            }),
      };
    }
  }
}

async function httpCheck(
  check: Extract<HealthCheck, { type: 'http' }>,
  options: HealthCheckOptions,
  timeoutMs: number,
): Promise<Outcome> {
  const url = new URL(check.url);
  const scheme = url.protocol === 'https:' ? 'https' : url.protocol === 'http:' ? 'http' : undefined;
  if (!scheme) return { passed: false, observed: {}, reason: `${url.protocol} URLs cannot be checked` };
  try {
    const response = await httpExchange(
      {
        scheme,
        address: options.address,
        port: url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port),
        hostHeader: url.host,
        verifyTls: options.verifyTls ?? true,
      },
      {
        method: check.method,
        path: `${url.pathname}${url.search}`,
        headers: check.method === 'POST' ? { 'content-length': '0' } : {},
      },
      { timeoutMs },
    );
    const statusOk = response.status === check.expectStatus;
    const bodyContains =
      check.expectBodyContains === undefined
        ? undefined
        : response.body.toString('utf8').includes(check.expectBodyContains);
    const reasons = [
      ...(statusOk ? [] : [`status ${response.status}, expected ${check.expectStatus}`]),
      ...(bodyContains === false
        ? [`body does not contain ${JSON.stringify(truncate(check.expectBodyContains ?? '', 80))}`]
        : []),
    ];
    return {
      passed: reasons.length === 0,
      observed: { status: response.status, ...(bodyContains === undefined ? {} : { bodyContains }) },
      ...(reasons.length ? { reason: reasons.join('; ') } : {}),
    };
  } catch (error) {
    if (error instanceof HttpFailure) return { passed: false, observed: {}, reason: error.message };
    throw error;
  }
}

function tcpCheck(address: string, port: number, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    const finish = (outcome: Outcome) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(
      () =>
        finish({
          passed: false,
          observed: { connected: false },
          reason: `no connection within ${timeoutMs} ms`,
        }),
      timeoutMs,
    );
    socket.once('connect', () => finish({ passed: true, observed: { connected: true } }));
    socket.once('error', (error: NodeJS.ErrnoException) =>
      finish({
        passed: false,
        observed: { connected: false },
        reason: `connection failed: ${error.code ?? error.message}`,
      }),
    );
  });
}

function targetOf(deps: HealthCheckDeps, check: HealthCheck, options: HealthCheckOptions): string {
  if (check.type === 'command' || check.type === 'process') return deps.transport.target;
  if (check.type === 'tcp')
    return endpointLabel({ scheme: 'http', address: options.address, port: check.port }).replace(
      /^http/,
      'tcp',
    );
  const url = new URL(check.url);
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  const port = url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port);
  return endpointLabel({ scheme, address: options.address, port }, `${url.pathname}${url.search}`);
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

const elapsed = (started: number) => Math.round((performance.now() - started) * 1000) / 1000;
