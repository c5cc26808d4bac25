// `persona agent install|revoke HOST`: the host's persona-agent, installed over the host's
// transport by the API (the embedded runtime or a deployed stage), and its credential revoked.
import { type Command, InvalidArgumentError, Option } from 'commander';
import pc from 'picocolors';
import type { PersonaClient } from './client.js';
import { jsonText } from './render.js';

interface InstallResult {
  host: string;
  credentialId: string;
  issued: boolean;
  endpoint: string;
  intervalSeconds: number;
  init: 'systemd' | 'supervised';
  cron: boolean;
  http: string;
  revoked: string[];
}

interface RevokeResult {
  host: string;
  revoked: string[];
  uninstalled: boolean;
  detail?: string;
}

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
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
      const res = await api.request<InstallResult>('POST', `/hosts/${encodeURIComponent(host)}/agent`, {
        body: { intervalSeconds: o.interval, ...(o.agentEndpoint ? { endpoint: o.agentEndpoint } : {}) },
      });
      const r = res.body;
      if (json) {
        process.stdout.write(`${jsonText(r)}\n`);
        return;
      }
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
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
      const r = (await api.request<RevokeResult>('DELETE', `/hosts/${encodeURIComponent(host)}/agent`)).body;
      if (json) {
        process.stdout.write(`${jsonText(r)}\n`);
        return;
      }
      process.stdout.write(
        `${pc.green('revoked')} ${r.revoked.length} credential${r.revoked.length === 1 ? '' : 's'} of ${r.host}\n` +
          (r.uninstalled
            ? '  the agent was removed from the host\n'
            : `  the agent was not removed: ${r.detail ?? 'unknown'}\n`),
      );
    });
}
