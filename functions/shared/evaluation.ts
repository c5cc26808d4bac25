// What evaluating hosts works with in a function (POST /signals, POST /metrics, the triggers'
// evaluate function): the stores from the shared runtime and the light switch starter. Kept
// out of runtime.ts, which every function imports, so that only the functions that evaluate
// carry evaluation and the switch start in their bundles.
import { type EvaluationDeps, evaluateHost } from '../../core/persona/service.js';
import { startPersonaSwitch } from './persona-switch-start.js';
import { hostPersonas, hosts, metricsStore, personas, signalStore, useMetricsEvaluation } from './runtime.js';

let evaluation: EvaluationDeps | undefined;

/** What evaluating a host reads and writes, and how it starts a switch. */
export function personaEvaluation(): EvaluationDeps {
  evaluation ??= {
    personas: personas(),
    hosts: hosts(),
    states: hostPersonas(),
    metrics: metricsStore(),
    signals: signalStore(),
    startSwitch: startPersonaSwitch,
  };
  return evaluation;
}

// A function that imports this evaluates each metric report where it stores it.
useMetricsEvaluation((host, now) => evaluateHost(personaEvaluation(), host, now));
