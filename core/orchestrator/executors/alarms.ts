// threshold.set / threshold.unset on an EC2 host: each monitoring threshold is one CloudWatch
// alarm of the instance, named after the host and the threshold's key, put with PutMetricAlarm
// and removed with DeleteAlarms. Prepare reads the alarm of that name (DescribeAlarms): revert
// puts it back as it was, or deletes the one the Change made. Nothing runs on the host.
import {
  type CloudWatchClient,
  type ComparisonOperator,
  DeleteAlarmsCommand,
  DescribeAlarmsCommand,
  type MetricAlarm,
  PutMetricAlarmCommand,
  type PutMetricAlarmCommandInput,
} from '@aws-sdk/client-cloudwatch';
import type { Change } from '../../delta/changes.js';
import { changed, type Executor, unchanged } from './executor.js';

type ThresholdEntry = NonNullable<Extract<Change, { section: 'thresholds' }>['to']>;

export interface AlarmTarget {
  readonly cloudwatch: CloudWatchClient;
  /** The registered host's name: alarm names start with it. */
  readonly host: string;
  readonly instanceId: string;
}

const COMPARISONS: Readonly<Record<ThresholdEntry['comparison'], ComparisonOperator>> = {
  '>': 'GreaterThanThreshold',
  '>=': 'GreaterThanOrEqualToThreshold',
  '<': 'LessThanThreshold',
  '<=': 'LessThanOrEqualToThreshold',
};
const WORDS: Readonly<Record<ThresholdEntry['comparison'], string>> = {
  '>': 'gt',
  '>=': 'ge',
  '<': 'lt',
  '<=': 'le',
};

/**
 * Where a metric of the vocabulary lives in CloudWatch: EC2's own CPU metric, the CloudWatch
 * agent's memory and disk metrics; any other name is a metric of Persona's namespace.
 */
const METRICS: Readonly<Record<string, { namespace: string; name: string }>> = {
  'cpu.utilization': { namespace: 'AWS/EC2', name: 'CPUUtilization' },
  'memory.utilization': { namespace: 'CWAgent', name: 'mem_used_percent' },
  'disk.used_percent': { namespace: 'CWAgent', name: 'disk_used_percent' },
  'network.tx.bytes_per_second': { namespace: 'AWS/EC2', name: 'NetworkOut' },
  'network.rx.bytes_per_second': { namespace: 'AWS/EC2', name: 'NetworkIn' },
};

/** The alarm's name: at most 255 characters, of the host, the metric and the comparison. */
export function alarmName(host: string, t: Pick<ThresholdEntry, 'metric' | 'comparison'>): string {
  return `persona-${host}-${t.metric}-${WORDS[t.comparison]}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 255);
}

/** The PutMetricAlarm input for a threshold: sampled each minute, held for its duration. */
export function alarmInput(target: AlarmTarget, t: ThresholdEntry): PutMetricAlarmCommandInput {
  const metric = METRICS[t.metric] ?? { namespace: 'Persona', name: t.metric };
  return {
    AlarmName: alarmName(target.host, t),
    AlarmDescription: `Persona threshold of ${target.host}: ${t.metric} ${t.comparison} ${t.value} for ${t.durationSeconds} s (${t.severity})`,
    Namespace: metric.namespace,
    MetricName: metric.name,
    Dimensions: [{ Name: 'InstanceId', Value: target.instanceId }],
    Statistic: 'Average',
    Period: 60,
    EvaluationPeriods: Math.max(1, Math.ceil(t.durationSeconds / 60)),
    Threshold: t.value,
    ComparisonOperator: COMPARISONS[t.comparison],
    TreatMissingData: 'missing',
  };
}

/** An alarm as DescribeAlarms answered it, as the PutMetricAlarm input that makes it again. */
function again(a: MetricAlarm): PutMetricAlarmCommandInput {
  return {
    AlarmName: a.AlarmName,
    ...(a.AlarmDescription === undefined ? {} : { AlarmDescription: a.AlarmDescription }),
    ...(a.Namespace === undefined ? {} : { Namespace: a.Namespace }),
    ...(a.MetricName === undefined ? {} : { MetricName: a.MetricName }),
    ...(a.Dimensions === undefined ? {} : { Dimensions: a.Dimensions }),
    ...(a.Statistic === undefined ? {} : { Statistic: a.Statistic }),
    ...(a.Period === undefined ? {} : { Period: a.Period }),
    EvaluationPeriods: a.EvaluationPeriods ?? 1,
    ...(a.Threshold === undefined ? {} : { Threshold: a.Threshold }),
    ComparisonOperator: a.ComparisonOperator,
    ...(a.TreatMissingData === undefined ? {} : { TreatMissingData: a.TreatMissingData }),
    ...(a.AlarmActions === undefined ? {} : { AlarmActions: a.AlarmActions }),
    ...(a.OKActions === undefined ? {} : { OKActions: a.OKActions }),
  };
}

const sameAlarm = (a: MetricAlarm | undefined, want: PutMetricAlarmCommandInput) =>
  a !== undefined &&
  a.Threshold === want.Threshold &&
  a.ComparisonOperator === want.ComparisonOperator &&
  a.EvaluationPeriods === want.EvaluationPeriods &&
  a.MetricName === want.MetricName &&
  a.Namespace === want.Namespace;

function entryOf(change: Change): ThresholdEntry {
  if (change.section !== 'thresholds') throw new TypeError(`${change.kind} is not a threshold change`);
  const t = change.to ?? change.from;
  if (t === null) throw new TypeError(`${change.kind} carries no threshold`);
  return t;
}

export function alarmExecutor(target: AlarmTarget): Executor {
  const describe = async (name: string): Promise<MetricAlarm | undefined> =>
    (
      await target.cloudwatch.send(
        new DescribeAlarmsCommand({ AlarmNames: [name], AlarmTypes: ['MetricAlarm'] }),
      )
    ).MetricAlarms?.[0];
  return {
    kinds: ['threshold.set', 'threshold.unset'],

    async prepare(_ctx, change) {
      const name = alarmName(target.host, entryOf(change));
      return { name, alarm: (await describe(name)) ?? null };
    },

    async apply(_ctx, change) {
      const t = entryOf(change);
      const name = alarmName(target.host, t);
      const now = await describe(name);
      if (change.kind === 'threshold.unset' || change.to === null) {
        if (now === undefined) return unchanged(`no alarm ${name}`);
        await target.cloudwatch.send(new DeleteAlarmsCommand({ AlarmNames: [name] }));
        return changed(`alarm ${name} deleted`);
      }
      const want = alarmInput(target, t);
      if (sameAlarm(now, want)) return unchanged(`alarm ${name} is already set`);
      await target.cloudwatch.send(new PutMetricAlarmCommand(want));
      return changed(`alarm ${name}: ${t.metric} ${t.comparison} ${t.value}`);
    },

    async revert(_ctx, _change, priorValue) {
      const prior = priorValue as { name: string; alarm: MetricAlarm | null };
      const now = await describe(prior.name);
      if (prior.alarm === null) {
        if (now === undefined) return unchanged(`no alarm ${prior.name}, as before`);
        await target.cloudwatch.send(new DeleteAlarmsCommand({ AlarmNames: [prior.name] }));
        return changed(`alarm ${prior.name} deleted, as before`);
      }
      const before = again(prior.alarm);
      if (sameAlarm(now, before)) return unchanged(`alarm ${prior.name} is as it was`);
      await target.cloudwatch.send(new PutMetricAlarmCommand(before));
      return changed(`alarm ${prior.name} put back as it was`);
    },
  };
}
