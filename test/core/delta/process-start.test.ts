// A process Change carries how to start it: the start command of its name and the environment
// scoped to it, from the Profile that has the process. Processes come after the services.
import { describe, expect, it } from 'vitest';
import { Change } from '../../../core/delta/changes.js';
import { diff } from '../../../core/delta/diff.js';
import { profile } from './fixtures.js';

const bare = profile();
const web = profile({
  services: [{ name: 'nginx', manager: 'sysvinit', state: 'running', enabled: true }],
  processes: [
    { name: 'nginx', command: 'nginx: master process nginx', user: 'root', nice: 0, cgroup: '/' },
    { name: 'shop-api', command: '/usr/local/bin/shop-api 100000', user: 'shop' },
  ],
  configuration: {
    env: [
      { name: 'APP_MODE', value: 'production', scope: 'shop-api' },
      {
        name: 'DB_PASSWORD',
        secretRef: { provider: 'local', key: 'web-1/env/shop-api/DB_PASSWORD' },
        sensitive: true,
        scope: 'shop-api',
      },
      { name: 'LANG', value: 'C.UTF-8', scope: '/etc/environment' },
    ],
    files: [],
    sysctl: {},
  },
  application: {
    startCommands: [
      {
        name: 'shop-api',
        command: '/usr/local/bin/shop-api 100000',
        user: 'shop',
        workingDirectory: '/srv/shop',
      },
    ],
    paths: [],
    healthChecks: [],
  },
});

describe('process Changes in a diff', () => {
  it('carry the start command of their name and only the environment scoped to it', () => {
    const add = diff(bare, web).changes.find((c) => c.kind === 'process.add' && c.key === 'shop-api');
    expect(add).toMatchObject({
      start: {
        command: {
          name: 'shop-api',
          command: '/usr/local/bin/shop-api 100000',
          workingDirectory: '/srv/shop',
        },
        environment: [
          { name: 'APP_MODE', value: 'production', scope: 'shop-api' },
          { name: 'DB_PASSWORD', secretRef: { provider: 'local' }, scope: 'shop-api' },
        ],
      },
    });
    expect(() => Change.parse(add)).not.toThrow();
  });

  it('carry no start for a process no start command names (a service runs it)', () => {
    const add = diff(bare, web).changes.find((c) => c.kind === 'process.add' && c.key === 'nginx');
    expect(add).toBeDefined();
    expect(add).not.toHaveProperty('start');
  });

  it('carry on a removal the start command of the Profile left, so that undoing it can start it again', () => {
    const remove = diff(web, bare).changes.find((c) => c.kind === 'process.remove' && c.key === 'shop-api');
    expect(remove).toMatchObject({ start: { command: { name: 'shop-api' } } });
  });

  it('come after the service Changes on the way up and before them on the way down', () => {
    const up = diff(bare, web).changes.map((c) => `${c.kind} ${c.key}`);
    expect(up.indexOf('process.add nginx')).toBeGreaterThan(up.indexOf('service.start nginx'));
    const down = diff(web, bare).changes.map((c) => `${c.kind} ${c.key}`);
    expect(down.indexOf('process.remove shop-api')).toBeLessThan(down.indexOf('service.stop nginx'));
  });
});
