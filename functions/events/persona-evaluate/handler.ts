// The evaluate function: woken by EventBridge Scheduler at a persona's window edges (the input
// core/persona/triggers.ts gives each schedule) and by the default bus's rule on the state
// changes of alarms named Persona/… (CloudWatch's own event). An input of neither shape is
// logged and dropped: retrying it would not make it readable.
import middy from '@middy/core';
import * as z from 'zod';
import { PersonaMetadata } from '../../../core/persona/schema.js';
import {
  evaluateHosts,
  evaluatePersonaHosts,
  evaluationSummary,
  type HostEvaluation,
} from '../../../core/persona/service.js';
import { AlarmStateChange, alarmTrigger } from '../../../core/persona/triggers.js';
import { personaEvaluation } from '../../shared/evaluation.js';
import { logger, observability, signalStore } from '../../shared/runtime.js';

export const WindowEdge = z.object({
  persona: PersonaMetadata.shape.name,
  reason: z.literal('window-edge'),
  scheduledTime: z.string().optional(),
});

export interface EvaluateResult {
  readonly trigger: 'window-edge' | 'alarm' | 'ignored';
  readonly detail: string;
  readonly evaluated: number;
  readonly hosts: readonly ReturnType<typeof evaluationSummary>[];
}

const answer = (
  trigger: EvaluateResult['trigger'],
  detail: string,
  results: readonly HostEvaluation[] = [],
) => {
  const failed = results.filter((r) => r.outcome === 'failed');
  if (failed.length > 0) logger.warn('hosts not evaluated', { failed: failed.map(evaluationSummary) });
  return { trigger, detail, evaluated: results.length, hosts: results.map(evaluationSummary) };
};

export async function handler(event: unknown): Promise<EvaluateResult> {
  const now = Date.now();
  const edge = WindowEdge.safeParse(event);
  if (edge.success) {
    const { persona, scheduledTime } = edge.data;
    const results = await evaluatePersonaHosts(personaEvaluation(), persona, now);
    return answer('window-edge', `${persona} at ${scheduledTime ?? new Date(now).toISOString()}`, results);
  }
  const alarm = AlarmStateChange.safeParse(event);
  if (alarm.success) {
    const trigger = alarmTrigger(alarm.data);
    if ('ignored' in trigger) {
      logger.warn('alarm state change ignored', { reason: trigger.ignored });
      return answer('ignored', trigger.ignored);
    }
    // The alarm's state is what criteria read: a signal of each host it is about, until the
    // next change; INSUFFICIENT_DATA forgets it (unknown).
    for (const host of trigger.hosts) {
      if (trigger.value === undefined) await signalStore().deleteForHost(host, trigger.signal);
      else
        await signalStore().putForHost(host, { name: trigger.signal, value: trigger.value, at: trigger.at });
    }
    const results = await evaluateHosts(personaEvaluation(), trigger.hosts, now);
    return answer('alarm', `${trigger.signal} ${trigger.value ?? 'INSUFFICIENT_DATA'}`, results);
  }
  const detail =
    'neither a window edge ({ persona, reason: "window-edge" }) nor a CloudWatch Alarm State Change';
  logger.error('persona evaluation input not understood', { detail });
  return answer('ignored', detail);
}

export const main = middy(handler).use(observability());
