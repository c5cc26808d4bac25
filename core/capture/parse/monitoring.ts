// Monitoring agents, recognised by their package, their running process, or both.
import type { z } from 'zod';
import { MonitoringAgent } from '../../profile/schema.js';
import type { ParseContext } from './context.js';

type AgentInput = z.input<typeof MonitoringAgent>;

interface KnownAgent {
  readonly name: string;
  readonly packages: readonly string[];
  /** comm names (at most 15 characters) or, with a "/", a fragment of the command line. */
  readonly processes: readonly string[];
  /** Where its configuration lives, first existing one wins. */
  readonly configs: readonly string[];
}

export const KNOWN_AGENTS: readonly KnownAgent[] = [
  {
    name: 'amazon-cloudwatch-agent',
    packages: ['amazon-cloudwatch-agent'],
    processes: ['amazon-cloudwat'],
    configs: ['/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json'],
  },
  {
    name: 'azuremonitoragent',
    packages: ['azuremonitoragent'],
    processes: ['amacoreagent', 'mdsd'],
    configs: ['/etc/opt/microsoft/azuremonitoragent/config-cache/mdsd.hr.json'],
  },
  {
    name: 'omsagent',
    packages: ['omsagent'],
    processes: ['omsagent'],
    configs: ['/etc/opt/microsoft/omsagent/conf/omsagent.conf'],
  },
  {
    name: 'node_exporter',
    packages: ['prometheus-node-exporter', 'node_exporter', 'golang-github-prometheus-node-exporter'],
    processes: ['node_exporter', 'prometheus-node'],
    configs: ['/etc/default/prometheus-node-exporter', '/etc/sysconfig/node_exporter'],
  },
  {
    name: 'datadog-agent',
    packages: ['datadog-agent'],
    processes: ['/datadog-agent/'],
    configs: ['/etc/datadog-agent/datadog.yaml'],
  },
  {
    name: 'newrelic-infra',
    packages: ['newrelic-infra'],
    processes: ['newrelic-infra'],
    configs: ['/etc/newrelic-infra.yml'],
  },
  {
    name: 'telegraf',
    packages: ['telegraf'],
    processes: ['telegraf'],
    configs: ['/etc/telegraf/telegraf.conf'],
  },
  {
    name: 'zabbix-agent',
    packages: ['zabbix-agent', 'zabbix-agent2'],
    processes: ['zabbix_agentd', 'zabbix_agent2'],
    configs: ['/etc/zabbix/zabbix_agentd.conf', '/etc/zabbix/zabbix_agent2.conf'],
  },
  {
    name: 'collectd',
    packages: ['collectd', 'collectd-core'],
    processes: ['collectd'],
    configs: ['/etc/collectd/collectd.conf', '/etc/collectd.conf'],
  },
  {
    name: 'fluent-bit',
    packages: ['fluent-bit'],
    processes: ['fluent-bit'],
    configs: ['/etc/fluent-bit/fluent-bit.conf'],
  },
  {
    name: 'filebeat',
    packages: ['filebeat'],
    processes: ['filebeat'],
    configs: ['/etc/filebeat/filebeat.yml'],
  },
  {
    name: 'metricbeat',
    packages: ['metricbeat'],
    processes: ['metricbeat'],
    configs: ['/etc/metricbeat/metricbeat.yml'],
  },
  {
    name: 'elastic-agent',
    packages: ['elastic-agent'],
    processes: ['elastic-agent'],
    configs: ['/etc/elastic-agent/elastic-agent.yml'],
  },
  {
    name: 'google-cloud-ops-agent',
    packages: ['google-cloud-ops-agent'],
    processes: ['google_cloud_ops'],
    configs: ['/etc/google-cloud-ops-agent/config.yaml'],
  },
  {
    name: 'nrpe',
    packages: ['nagios-nrpe-server', 'nrpe'],
    processes: ['nrpe'],
    configs: ['/etc/nagios/nrpe.cfg'],
  },
  { name: 'netdata', packages: ['netdata'], processes: ['netdata'], configs: ['/etc/netdata/netdata.conf'] },
  {
    name: 'grafana-agent',
    packages: ['grafana-agent'],
    processes: ['grafana-agent'],
    configs: ['/etc/grafana-agent.yaml'],
  },
  { name: 'alloy', packages: ['alloy'], processes: ['alloy'], configs: ['/etc/alloy/config.alloy'] },
  {
    name: 'otelcol',
    packages: ['otelcol', 'otelcol-contrib'],
    processes: ['otelcol', 'otelcol-contrib'],
    configs: ['/etc/otelcol/config.yaml', '/etc/otelcol-contrib/config.yaml'],
  },
  { name: 'splunkforwarder', packages: ['splunkforwarder'], processes: ['splunkd'], configs: [] },
];

export interface AgentInputs {
  /** Installed packages: name → version. */
  readonly packages: ReadonlyMap<string, string>;
  readonly processes: readonly { readonly comm: string; readonly args: string }[];
  readonly hashOf: (path: string) => string | undefined;
}

export function parseMonitoringAgents(ctx: ParseContext, inputs: AgentInputs): AgentInput[] {
  const found: AgentInput[] = [];
  for (const agent of KNOWN_AGENTS) {
    const pkg = agent.packages.find((p) => inputs.packages.has(p));
    const running = inputs.processes.some((p) =>
      agent.processes.some((name) => (name.includes('/') ? p.args.includes(name) : p.comm === name)),
    );
    if (pkg === undefined && !running) continue;
    const version = pkg === undefined ? undefined : inputs.packages.get(pkg);
    const configHash = agent.configs.map(inputs.hashOf).find((h) => h !== undefined);
    found.push({
      name: agent.name,
      ...(version === undefined ? {} : { version }),
      ...(configHash === undefined ? {} : { configHash }),
    });
  }
  return ctx.keep('monitoring', MonitoringAgent, found, (a) => a.name, 'monitoring agent');
}
