// What behavioural validation found, as data: one schema for the clone workflow that stores the
// report (S3 key on the operation), the API that publishes it and the CLI that prints it.
import * as z from 'zod';

export const VERDICTS = ['passed', 'failed', 'inconclusive'] as const;
export type Verdict = (typeof VERDICTS)[number];

const ms = z.number().nonnegative();

export const HealthCheckResult = z
  .strictObject({
    name: z.string(),
    type: z.enum(['http', 'tcp', 'command', 'process']),
    passed: z.boolean(),
    /** Where the check went: `http://10.0.0.3:8080/health`, `tcp://10.0.0.3:5432`, `ssh://root@10.0.0.3`. */
    target: z.string(),
    observed: z
      .strictObject({
        status: z.number().int().optional(),
        bodyContains: z.boolean().optional(),
        connected: z.boolean().optional(),
        exitCode: z.number().int().optional(),
        output: z.string().optional().describe('The tail of the command output, truncated'),
        processCount: z.number().int().nonnegative().optional(),
      })
      .default({}),
    /** Why it failed, or what it expected; absent when it passed. */
    reason: z.string().optional(),
    durationMs: ms,
  })
  .meta({ id: 'HealthCheckResult' });
export type HealthCheckResult = z.infer<typeof HealthCheckResult>;

export const HealthReport = z
  .strictObject({
    passed: z.boolean(),
    results: z.array(HealthCheckResult),
  })
  .meta({ id: 'HealthReport' });
export type HealthReport = z.infer<typeof HealthReport>;

export const FieldDifference = z
  .strictObject({
    /** The request as sent: `GET /api/items?page=2`. */
    request: z.string(),
    /** `status`, `header:content-type`, `body`, `body.type` or a JSON path such as `json:$.items[0].price`. */
    field: z.string(),
    /** The source's value in the first difference seen, truncated. */
    source: z.string(),
    /** The candidate's value in the first difference seen, truncated. */
    candidate: z.string(),
    /** Exchanges where the field was compared. */
    samples: z.number().int().positive(),
    /** Exchanges where the candidate differed from the first source probe. */
    differences: z.number().int().nonnegative(),
    /** Exchanges where the two source probes differed from each other. */
    noise: z.number().int().nonnegative(),
  })
  .meta({ id: 'FieldDifference' });
export type FieldDifference = z.infer<typeof FieldDifference>;

export const ProbeReport = z
  .strictObject({
    passed: z.boolean(),
    /** Requests sent to each side (every request goes to the source twice and the candidate once). */
    requests: z.number().int().nonnegative(),
    differences: z.array(FieldDifference),
    /** Fields that differed between the two source probes and were therefore not compared. */
    noisyFields: z.array(z.strictObject({ request: z.string(), field: z.string() })),
    thresholds: z.strictObject({ relativePercent: z.number(), absolutePercent: z.number() }),
  })
  .meta({ id: 'ProbeReport' });
export type ProbeReport = z.infer<typeof ProbeReport>;

export const LoadResult = z
  .strictObject({
    target: z.string(),
    ratePerSecond: z.number().positive(),
    /** Requests the schedule held: the rate times the duration, capped by the request bound. */
    planned: z.number().int().nonnegative(),
    sent: z.number().int().nonnegative(),
    /** Requests answered with a status below 400. */
    succeeded: z.number().int().nonnegative(),
    errors: z.number().int().nonnegative(),
    errorRate: z.number().min(0).max(1),
    /** Error reasons and how often each occurred (`status 503`, `timeout`, `ECONNREFUSED`). */
    errorReasons: z.record(z.string(), z.number().int().positive()),
    /** From each request's intended start, so a stalled server's queue counts (no coordinated omission). */
    latencyMs: z.strictObject({ p50: ms, p95: ms, p99: ms, max: ms, mean: ms }),
    /** Requests started per second over the schedule. */
    sentPerSecond: z.number().nonnegative(),
    /** Successful responses per second from the first start to the last answer. */
    throughputPerSecond: z.number().nonnegative(),
    durationMs: ms,
    /** True when the time bound ended the run and unanswered requests were abandoned as errors. */
    cutShort: z.boolean(),
  })
  .meta({ id: 'LoadResult' });
export type LoadResult = z.infer<typeof LoadResult>;

export const LoadTolerances = z
  .strictObject({
    /** The candidate's p95 may exceed the source's by this fraction plus `p95AbsoluteMs`. */
    p95Relative: z.number().nonnegative().default(0.25),
    p95AbsoluteMs: z.number().nonnegative().default(20),
    /** Likewise for p99. */
    p99Relative: z.number().nonnegative().default(0.5),
    p99AbsoluteMs: z.number().nonnegative().default(50),
    /** The candidate's error rate may exceed the source's by at most this (0.01 = one point). */
    errorRateIncrease: z.number().min(0).max(1).default(0.01),
    /** The candidate must achieve at least this share of the source's throughput. */
    minThroughputRatio: z.number().min(0).max(1).default(0.9),
  })
  .meta({ id: 'LoadTolerances' });
export type LoadTolerances = z.infer<typeof LoadTolerances>;

export const LoadComparison = z
  .strictObject({
    passed: z.boolean(),
    source: LoadResult,
    candidate: LoadResult,
    tolerances: LoadTolerances,
    /** One sentence per tolerance exceeded, naming both figures. */
    reasons: z.array(z.string()),
  })
  .meta({ id: 'LoadComparison' });
export type LoadComparison = z.infer<typeof LoadComparison>;

export const ValidationReport = z
  .strictObject({
    schemaVersion: z.literal(1),
    verdict: z.enum(VERDICTS),
    /** Why the verdict is not `passed`; empty when it is. */
    reasons: z.array(z.string()),
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    /** Each part is absent when it was not asked for. */
    healthChecks: HealthReport.optional(),
    probes: ProbeReport.optional(),
    load: LoadComparison.optional(),
  })
  .meta({ id: 'ValidationReport' });
export type ValidationReport = z.infer<typeof ValidationReport>;
