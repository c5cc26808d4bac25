// What agentless sampling works with in a function: the stores, the hosts' transports as a
// capture reaches them (pinned host keys, never a new one), and CloudWatch for EC2 instances
// where this runtime can reach it; and what the check for an operator's change needs besides
// (core/persona/drift.ts): the assignments, the persona states, and the switch starter.
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { type DriftDeps, DynamoDriftMemory } from '../../core/persona/drift.js';
import { DynamoCounterMemory, type SamplingDeps } from '../../core/persona/sampling.js';
import { HOST_PERSONAS_TABLE } from '../../core/storage/definitions.js';
import { captureDeps } from './capture.js';
import { startPersonaSwitch } from './persona-switch-start.js';
import {
  agentCredentials,
  assignments,
  ddb,
  getRequiredEnv,
  hostPersonas,
  hosts,
  metricsStore,
  operations,
  personas,
  traced,
} from './runtime.js';

let sampling: SamplingDeps | undefined;

export function samplingDeps(): SamplingDeps {
  if (sampling === undefined) {
    const embedded = process.env.PERSONA_RUNTIME === 'embedded';
    const cloudwatch =
      !embedded || process.env.AWS_ENDPOINT_URL_CLOUDWATCH !== undefined
        ? traced(new CloudWatchClient({}))
        : undefined;
    sampling = {
      personas: personas(),
      hosts: hosts(),
      agents: agentCredentials(),
      metrics: metricsStore(),
      memory: new DynamoCounterMemory(ddb(), getRequiredEnv(HOST_PERSONAS_TABLE.env)),
      transportFor: (host) => captureDeps().transportFor(host, { acceptNewHostKey: false }),
      ...(cloudwatch ? { cloudwatch } : {}),
    };
  }
  return sampling;
}

let drift: DriftDeps | undefined;

export function driftDeps(): DriftDeps {
  drift ??= {
    hosts: hosts(),
    agents: agentCredentials(),
    assigned: assignments().personas,
    states: hostPersonas(),
    operations: operations(),
    memory: new DynamoDriftMemory(ddb(), getRequiredEnv(HOST_PERSONAS_TABLE.env)),
    record: (decision) => hostPersonas().record(decision),
    startSwitch: startPersonaSwitch,
    transportFor: (host) => captureDeps().transportFor(host, { acceptNewHostKey: false }),
  };
  return drift;
}
