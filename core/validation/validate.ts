// Behavioural validation of a clone against its source: the Profile's health checks on the
// clone, differential probes of both, and a bounded load test of both, combined into one report
// and a verdict. Each part runs only when asked for; what was not asked for is absent.
import type { Transport } from '../transport/transport.js';
import { type HealthCheck, runHealthChecks } from './health.js';
import type { HttpEndpoint } from './http.js';
import { type LoadOptions, parseTolerances, runLoadComparison } from './load.js';
import { type ProbeOptions, runProbes } from './probes.js';
import type { LoadTolerances, ValidationReport, Verdict } from './report.js';

export interface ValidationDeps {
  /** Reaches the candidate (the clone). */
  readonly transport: Transport;
  readonly now?: () => Date;
}

export interface ValidationOptions {
  /** The candidate's address as the control side reaches it. */
  readonly candidateAddress: string;
  /** The Profile's `spec.application.healthChecks`. */
  readonly healthChecks?: readonly HealthCheck[];
  readonly healthCheckOptions?: { readonly processTimeoutMs?: number; readonly verifyTls?: boolean };
  readonly probes?: ProbeOptions;
  readonly load?: LoadOptions & {
    readonly source: HttpEndpoint;
    readonly candidate: HttpEndpoint;
    readonly tolerances?: Partial<LoadTolerances>;
  };
}

export async function validateBehaviour(
  deps: ValidationDeps,
  options: ValidationOptions,
): Promise<ValidationReport> {
  const now = deps.now ?? (() => new Date());
  const startedAt = now().toISOString();
  // Bad options are refused before the first check touches either host.
  if (options.load) parseTolerances(options.load.tolerances);

  const healthChecks = options.healthChecks?.length
    ? await runHealthChecks({ transport: deps.transport }, options.healthChecks, {
        address: options.candidateAddress,
        ...options.healthCheckOptions,
      })
    : undefined;
  const probes = options.probes ? await runProbes(options.probes) : undefined;
  const load = options.load ? await runLoadComparison(options.load) : undefined;

  const reasons: string[] = [];
  for (const r of healthChecks?.results ?? [])
    if (!r.passed) reasons.push(`health check ${r.name} failed: ${r.reason ?? 'no reason given'}`);
  for (const d of probes?.differences ?? [])
    reasons.push(`${d.request}: ${d.field} differs (source ${d.source}, candidate ${d.candidate})`);
  for (const r of load?.reasons ?? []) reasons.push(`load: ${r}`);

  const ran = [healthChecks, probes, load].filter((part) => part !== undefined).length;
  const verdict: Verdict = reasons.length > 0 ? 'failed' : ran === 0 ? 'inconclusive' : 'passed';
  if (verdict === 'inconclusive')
    reasons.push('nothing was validated: no health checks, probes or load test were given');
  return {
    schemaVersion: 1,
    verdict,
    reasons,
    startedAt,
    finishedAt: now().toISOString(),
    ...(healthChecks ? { healthChecks } : {}),
    ...(probes ? { probes } : {}),
    ...(load ? { load } : {}),
  };
}
