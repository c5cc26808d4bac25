// Host metrics as reported (POST /metrics): one item per report in METRICS_TABLE, keyed by
// host and the report's time, expiring after the retention. Criteria read back a few minutes
// of them; the forecaster reads two weeks, hence the 15-day default (its accuracy, held out
// over the last two days, is fitted on the 13 days before them).
import {
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  paginateQuery,
} from '@aws-sdk/lib-dynamodb';
import type { MetricReport, MetricSeries } from './schema.js';

export const DEFAULT_METRIC_RETENTION_DAYS = 15;
const DAY_MS = 86_400_000;

export class MetricStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Stores one report. Two reports of a host at the same millisecond are one item (the later
   * wins): a retried POST writes the same report again rather than a second sample.
   */
  async put(report: MetricReport, options: { readonly retentionDays?: number } = {}): Promise<void> {
    await this.ddb.send(new PutCommand({ TableName: this.tableName, Item: this.item(report, options) }));
  }

  /** Many reports at once (agentless sampling, imports), 25 to a request. */
  async putMany(reports: readonly MetricReport[], options: { readonly retentionDays?: number } = {}) {
    for (let i = 0; i < reports.length; i += 25) {
      let pending = reports.slice(i, i + 25).map((r) => ({ PutRequest: { Item: this.item(r, options) } }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        const out = await this.ddb.send(
          new BatchWriteCommand({ RequestItems: { [this.tableName]: pending } }),
        );
        pending = (out.UnprocessedItems?.[this.tableName] ?? []) as typeof pending;
        if (pending.length > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)));
      }
    }
  }

  /**
   * The samples of each of `names` at or after `sinceMs`, oldest first, from one Query of the
   * host's partition (paginated). A name with no sample is absent from the map. Items whose
   * time to live has passed are skipped: DynamoDB deletes them only some time after.
   */
  async series(host: string, names: readonly string[], sinceMs: number): Promise<Map<string, MetricSeries>> {
    const wanted = new Set(names);
    const times = new Map<string, number[]>();
    const values = new Map<string, number[]>();
    // The interval its latest report gave: without it evaluation takes the mean gap (or a
    // minute for one sample), and a single fresh sample would cover a short duration.
    const intervals = new Map<string, number>();
    const nowSeconds = Math.floor(this.clock() / 1000);
    const pages = paginateQuery(
      { client: this.ddb },
      {
        TableName: this.tableName,
        KeyConditionExpression: 'host = :h AND #at >= :since',
        ExpressionAttributeNames: { '#at': 'at' },
        ExpressionAttributeValues: { ':h': host, ':since': Math.max(0, Math.floor(sinceMs)) },
        ScanIndexForward: true,
      },
    );
    for await (const page of pages) {
      for (const item of page.Items ?? []) {
        if (typeof item.expiresAt === 'number' && item.expiresAt <= nowSeconds) continue;
        const at = item.at;
        const reported = item.values as Record<string, unknown> | undefined;
        if (typeof at !== 'number' || reported === undefined) continue;
        for (const [name, value] of Object.entries(reported)) {
          if (!wanted.has(name) || typeof value !== 'number' || !Number.isFinite(value)) continue;
          let t = times.get(name);
          let v = values.get(name);
          if (t === undefined || v === undefined) {
            t = [];
            v = [];
            times.set(name, t);
            values.set(name, v);
          }
          t.push(at);
          v.push(value);
          if (typeof item.intervalSeconds === 'number') intervals.set(name, item.intervalSeconds);
          else intervals.delete(name);
        }
      }
    }
    const out = new Map<string, MetricSeries>();
    for (const [name, t] of times) {
      const intervalSeconds = intervals.get(name);
      out.set(name, {
        times: Float64Array.from(t),
        values: Float64Array.from(values.get(name) ?? []),
        ...(intervalSeconds === undefined ? {} : { intervalSeconds }),
      });
    }
    return out;
  }

  private item(report: MetricReport, options: { readonly retentionDays?: number }) {
    const retention = options.retentionDays ?? DEFAULT_METRIC_RETENTION_DAYS;
    const at = Date.parse(report.at);
    return {
      host: report.host,
      at,
      values: report.values,
      ...(report.intervalSeconds === undefined ? {} : { intervalSeconds: report.intervalSeconds }),
      // From the report's own time, so that a late report does not outlive its neighbours.
      expiresAt: Math.floor((at + retention * DAY_MS) / 1000),
    };
  }
}
