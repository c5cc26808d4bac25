// `persona agent install|revoke HOST`: the host's persona-agent, installed over the host's
// transport by the API (the embedded runtime or a deployed stage), and its credential revoked.
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { z } from 'zod';
import type { AgentInstallRequest, AgentInstallResult, AgentRevokeResult } from '../core/api/schemas.js';
import type { PersonaClient } from './client.js';
import { pc, structured } from './output.js';
import { emit } from './render.js';

type InstallResult = z.output<typeof AgentInstallResult>;
type RevokeResult = z.output<typeof AgentRevokeResult>;

const seconds = (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 5 || Number(v) > 3600) {
    throw new InvalidArgumentError('expected a whole number of seconds, 5 to 3600');
  }
  return Number(v);
};

export function registerAgentCommands(
  program: Command,
  client: (cmd: Command) => { api: PersonaClient },
): void {
  const agent = program
    .command('agent')
    .description('the persona-agent on a host: its metrics and host-local persona parameters');

  agent
    .command('install')
    .description('install (or reinstall) the agent on a registered host, with a credential of its own')
    .argument('<host>', 'a registered host')
    // Named apart from the global --endpoint, which is the API this command talks to.
    .addOption(
      new Option(
        '--agent-endpoint <url>',
        'the API the agent calls (default: the stage URL in AWS; a tunnel over SSH from the embedded runtime)',
      ),
    )
    .option('--interval <seconds>', 'how often the agent reports', seconds, 60)
    .action(async (host: string, o: { agentEndpoint?: string; interval: number }, cmd: Command) => {
      const { api } = client(cmd);
      const json = structured(cmd);
      const res = await api.request<InstallResult>('POST', `/hosts/${encodeURIComponent(host)}/agent`, {
        body: {
          intervalSeconds: o.interval,
          ...(o.agentEndpoint ? { endpoint: o.agentEndpoint } : {}),
        } satisfies z.input<typeof AgentInstallRequest>,
      });
      const r = res.body;
      if (json) return emit(cmd, r);
      process.stdout.write(
        `${pc.green('installed')} persona-agent on ${r.host} (${r.init === 'systemd' ? 'systemd timer' : 'supervised loop'}${r.cron ? ', @reboot in cron' : ''}, ${r.http})\n` +
          `  reports to ${r.endpoint} every ${r.intervalSeconds} s\n` +
          `  credential ${r.credentialId}${r.issued ? ' (new)' : ' (kept)'}${r.revoked.length ? `; revoked ${r.revoked.join(', ')}` : ''}\n`,
      );
    });

  agent
    .command('revoke')
    .description(
      "revoke the host's agent credentials at once, and remove the agent when the host is reachable",
    )
    .argument('<host>', 'a registered host')
    .action(async (host: string, _o: unknown, cmd: Command) => {
      const { api } = client(cmd);
      const json = structured(cmd);
      const r = (await api.request<RevokeResult>('DELETE', `/hosts/${encodeURIComponent(host)}/agent`)).body;
      if (json) return emit(cmd, r);
      process.stdout.write(
        `${pc.green('revoked')} ${r.revoked.length} credential${r.revoked.length === 1 ? '' : 's'} of ${r.host}\n` +
          (r.uninstalled
            ? '  the agent was removed from the host\n'
            : `  the agent was not removed: ${r.detail ?? 'unknown'}\n`),
      );
    });
}
