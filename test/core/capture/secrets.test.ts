import { describe, expect, it } from 'vitest';
import {
  envLooksSensitive,
  fileLooksSensitive,
  redactCommand,
  SecretCollector,
} from '../../../core/capture/secrets.js';

describe('fileLooksSensitive', () => {
  it('flags shadow files, private keys and credential-named files', () => {
    for (const path of [
      '/etc/shadow',
      '/etc/gshadow-',
      '/etc/ssh/ssh_host_ed25519_key',
      '/root/.ssh/id_ed25519',
      '/etc/ssl/private/snakeoil.pem',
      '/srv/app/.env',
      '/srv/app/.env.production',
      '/etc/app/db_password',
      '/etc/app/API-Token.txt',
      '/home/u/.pgpass',
      '/etc/nginx/cert.key',
      '/run/secrets/db',
    ]) {
      expect(fileLooksSensitive(path), path).toBe(true);
    }
  });

  it('lets public keys, certificates and well-known public files through', () => {
    for (const path of [
      '/etc/passwd',
      '/etc/pam.d/common-password',
      '/etc/ssh/ssh_host_ed25519_key.pub',
      '/root/.ssh/id_ed25519.pub',
      '/etc/ssl/certs/ca-certificates.crt',
      '/etc/nginx/nginx.conf',
      '/etc/keys.conf.d',
    ]) {
      expect(fileLooksSensitive(path), path).toBe(false);
    }
  });
});

describe('envLooksSensitive', () => {
  it('flags credential names and values that carry credentials whatever their name', () => {
    expect(envLooksSensitive('DB_PASSWORD', 'x')).toBe(true);
    expect(envLooksSensitive('GITHUB_TOKEN', 'x')).toBe(true);
    expect(envLooksSensitive('DATABASE_URL', 'postgres://app:s3cret@db:5432/app')).toBe(true);
    expect(envLooksSensitive('TLS', '-----BEGIN RSA PRIVATE KEY-----')).toBe(true);
    expect(envLooksSensitive('AUTH', 'Bearer abcdefghijkl')).toBe(true);
    expect(envLooksSensitive('DATABASE_URL', 'postgres://db:5432/app')).toBe(false);
    expect(envLooksSensitive('NODE_ENV', 'production')).toBe(false);
  });
});

describe('redactCommand', () => {
  it('masks values of sensitive options, assignments, JSON fields and URL passwords', () => {
    expect(redactCommand('app --db-password=hunter2 --port 80')).toBe(
      'app --db-password=<redacted> --port 80',
    );
    expect(redactCommand('app --api-key abc123 -v')).toBe('app --api-key <redacted> -v');
    expect(redactCommand('env DB_PASSWORD=hunter2 LANG=C app')).toBe('env DB_PASSWORD=<redacted> LANG=C app');
    expect(redactCommand('run --env {"HOME": "/root", "AWS_SECRET_ACCESS_KEY": "abc"}')).toBe(
      'run --env {"HOME": "/root", "AWS_SECRET_ACCESS_KEY": "<redacted>"}',
    );
    expect(redactCommand('psql postgres://app:hunter2@db/app')).toBe('psql postgres://app:<redacted>@db/app');
    expect(redactCommand('nginx: worker process')).toBe('nginx: worker process');
  });
});

describe('SecretCollector', () => {
  it('hands out one reference per secret, under the host, and keeps the values beside them', () => {
    const secrets = new SecretCollector('web-a');
    const a = secrets.add('env', 'node/DB_PASSWORD', 'hunter2');
    const b = secrets.add('env', 'node/DB_PASSWORD', 'hunter2');
    const f = secrets.add('file', '/etc/ssl/private/web.key');
    expect(a).toEqual({ provider: 'local', key: 'web-a/env/node/DB_PASSWORD' });
    expect(b).toEqual(a);
    expect(f).toEqual({ provider: 'local', key: 'web-a/file/etc/ssl/private/web.key' });
    expect(secrets.list()).toEqual([
      { ref: a, kind: 'env', source: 'node/DB_PASSWORD', value: 'hunter2' },
      { ref: f, kind: 'file', source: '/etc/ssl/private/web.key' },
    ]);
  });
});
