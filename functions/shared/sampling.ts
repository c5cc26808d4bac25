// What agentless sampling works with in a function: the stores, the hosts' transports as a
// capture reaches them (pinned host keys, never a new one), and CloudWatch for EC2 instances
// where this runtime can reach it.
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DynamoCounterMemory, type SamplingDeps } from '../../core/persona/sampling.js';
import { HOST_PERSONAS_TABLE } from '../../core/storage/definitions.js';
import { captureDeps } from './capture.js';
import { agentCredentials, ddb, getRequiredEnv, hosts, metricsStore, personas, traced } from './runtime.js';

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
