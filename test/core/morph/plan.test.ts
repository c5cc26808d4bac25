// The Delta a morph chooses: only what differs from the host, and restarts only for running
// services whose files changed.
import { describe, expect, it } from 'vitest';
import { contentHash, planMorph } from '../../../core/morph/plan.js';
import { TargetProfile } from '../../../core/morph/target.js';
import { profile } from '../delta/fixtures.js';

const target = (spec: Record<string, unknown>) =>
  TargetProfile.parse({
    apiVersion: 'persona/v1',
    kind: 'TargetProfile',
    metadata: { name: 'web-server' },
    spec: { traits: { 'web-serving': 1 }, ...spec },
  });

const conf = 'port=8080\n';
const host = () =>
  profile({
    configuration: {
      sysctl: { 'net.core.somaxconn': '4096', 'net.ipv4.tcp_fin_timeout': '60' },
      files: [
        {
          path: '/etc/app.conf',
          hash: contentHash(conf),
          size: conf.length,
          mode: '0644',
          owner: 'root',
          group: 'root',
        },
        {
          path: '/etc/other.conf',
          hash: contentHash('x'),
          size: 1,
          mode: '0644',
          owner: 'root',
          group: 'root',
        },
      ],
    },
    services: [
      { name: 'app', manager: 'sysvinit', state: 'running', enabled: true },
      { name: 'other', manager: 'sysvinit', state: 'running', enabled: true },
      { name: 'idle', manager: 'sysvinit', state: 'stopped', enabled: false },
    ],
  });

describe('planMorph', () => {
  it('plans nothing for a host that already is the target', () => {
    const plan = planMorph(
      host(),
      target({
        sysctl: { 'net.core.somaxconn': '4096' },
        files: [{ path: '/etc/app.conf', content: conf, restarts: ['app'] }],
        services: [{ name: 'app', state: 'running' }],
      }),
    );
    expect(plan.delta.changes).toEqual([]);
    expect(plan.restarts).toEqual([]);
    expect(plan.unresolved).toEqual([]);
  });

  it('changes only what differs and restarts only the services whose files changed', () => {
    const plan = planMorph(
      host(),
      target({
        sysctl: { 'net.core.somaxconn': '4096', 'net.ipv4.tcp_fin_timeout': '15' },
        files: [
          { path: '/etc/app.conf', content: 'port=8080\nworkers=4\n', restarts: ['app'] },
          { path: '/etc/other.conf', content: 'x', restarts: ['other'] },
        ],
      }),
      { version: 7 },
    );
    expect(plan.delta.changes.map((c) => `${c.kind} ${c.key}`)).toEqual([
      'sysctl.set net.ipv4.tcp_fin_timeout',
      'file.write /etc/app.conf',
    ]);
    expect(plan.delta.from).toEqual({ name: 'web-1', version: 7 });
    expect(plan.restarts).toEqual([{ service: 'app', because: ['/etc/app.conf'] }]);
  });

  it('a mode or owner change alone is a write and restarts the service reading the file', () => {
    const plan = planMorph(
      host(),
      target({ files: [{ path: '/etc/app.conf', content: conf, mode: '0640', restarts: ['app'] }] }),
    );
    expect(plan.delta.changes.map((c) => c.kind)).toEqual(['file.write']);
    expect(plan.restarts.map((r) => r.service)).toEqual(['app']);
  });

  it('does not restart a service the Delta starts, nor one that ends stopped', () => {
    const plan = planMorph(
      host(),
      target({
        files: [
          { path: '/etc/idle.conf', content: 'a', restarts: ['idle'] },
          { path: '/etc/other.conf', content: 'changed', restarts: ['other'] },
        ],
        services: [
          { name: 'idle', state: 'running' },
          { name: 'other', state: 'stopped' },
        ],
      }),
    );
    expect(plan.delta.changes.map((c) => `${c.kind} ${c.key}`)).toEqual([
      'service.stop other',
      'file.write /etc/idle.conf',
      'file.write /etc/other.conf',
      'service.start idle',
    ]);
    expect(plan.restarts).toEqual([]);
  });

  it('lists a service the host does not have as unresolved: a morph installs nothing', () => {
    const plan = planMorph(host(), target({ services: [{ name: 'nginx', state: 'running' }] }));
    expect(plan.unresolved).toEqual([expect.objectContaining({ kind: 'service', key: 'nginx' })]);
  });
});
