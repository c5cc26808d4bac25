// What the capture does with the secrets it found: pinning references, and keeping files that
// hold secrets out of the tree it snapshots.
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { type Exclusion, pinSecretRefs, withoutSecretFiles } from '../../../core/capture/sealing.js';
import type { ProfileInput } from '../../../core/profile/schema.js';
import { tarSource } from '../../../core/snapshot/tar.js';

const D1 = 'a'.repeat(64);
const D2 = 'b'.repeat(64);

describe('pinSecretRefs', () => {
  it('pins every local reference of the Profile, wherever it sits, and leaves the rest as they are', () => {
    const profile = {
      spec: {
        configuration: {
          env: [{ name: 'DB_PASSWORD', secretRef: { provider: 'local', key: 'web/env/app/DB_PASSWORD' } }],
          files: [{ path: '/etc/shadow', secretRef: { provider: 'local', key: 'web/file/etc/shadow' } }],
        },
        security: {
          users: [{ name: 'root', passwordRef: { provider: 'local', key: 'web/password/nobody-sealed' } }],
        },
        storage: { volumes: [{ encryption: { keyRef: { provider: 'aws-ssm', parameter: '/p' } } }] },
      },
    } as unknown as ProfileInput;
    const pinned = pinSecretRefs(
      profile,
      new Map([
        ['web/env/app/DB_PASSWORD', D1],
        ['web/file/etc/shadow', D2],
      ]),
    ) as unknown as typeof profile & { spec: Record<string, any> };
    const spec = pinned.spec as any;

    expect(spec.configuration.env[0].secretRef).toEqual({
      provider: 'local',
      key: 'web/env/app/DB_PASSWORD',
      digest: D1,
    });
    expect(spec.configuration.files[0].secretRef.digest).toBe(D2);
    expect(spec.security.users[0].passwordRef).toEqual({
      provider: 'local',
      key: 'web/password/nobody-sealed',
    });
    expect(spec.storage.volumes[0].encryption.keyRef).toEqual({ provider: 'aws-ssm', parameter: '/p' });
    // The input is not changed in place.
    expect((profile as any).spec.configuration.env[0].secretRef.digest).toBeUndefined();
  });
});

type Entry = Partial<tar.Header> & Pick<tar.Header, 'name'> & { body?: string };

async function tarOf(entries: readonly Entry[]): Promise<Readable> {
  const pack = tar.pack();
  for (const { body, ...header } of entries) {
    if (body === undefined) pack.entry(header);
    else pack.entry(header, body);
  }
  pack.finalize();
  return Readable.from(pack as unknown as AsyncIterable<Buffer>);
}

describe('withoutSecretFiles', () => {
  it('leaves out sealed files, files whose path says they hold secrets and hard links to them', async () => {
    const source = tarSource(
      await tarOf([
        { name: 'etc/', type: 'directory' },
        { name: 'etc/default/shop-api', body: 'DB_PASSWORD=in-an-env-file\n' },
        { name: 'etc/hostname', body: 'web\n' },
        { name: 'etc/shadow', body: 'root:$6$hash:1:0:99999:7:::\n' },
        { name: 'etc/shadow.link', type: 'link', linkname: 'etc/shadow' },
        { name: 'etc/ssl/private/web.key', body: 'KEY BODY' },
        { name: 'etc/ssl/private/cert-link.pem', type: 'symlink', linkname: '../certs/web.pem' },
        { name: 'etc/nginx.conf', body: 'worker_processes 1;\n' },
      ]),
      'web:/',
    );
    const exclusion: Exclusion = { excluded: [], unlisted: [] };
    const sealed = new Map<string, string>();
    const kept: { path: string; content: string }[] = [];
    const filtered = withoutSecretFiles(
      source,
      new Set(['/etc/default/shop-api', '/etc/shadow']),
      exclusion,
      async (path, content) => {
        sealed.set(path, Buffer.from(content).toString('utf8'));
      },
    );
    for await (const item of filtered.entries()) {
      const pieces: Buffer[] = [];
      if (item.content) for await (const p of item.content()) pieces.push(Buffer.from(p));
      if (item.entry.type !== 'dir')
        kept.push({ path: item.entry.path, content: Buffer.concat(pieces).toString('utf8') });
    }

    expect(kept).toEqual([
      { path: 'etc/hostname', content: 'web\n' },
      { path: 'etc/ssl/private/cert-link.pem', content: '' },
      { path: 'etc/nginx.conf', content: 'worker_processes 1;\n' },
    ]);
    expect(exclusion.excluded).toEqual([
      'etc/default/shop-api',
      'etc/shadow',
      'etc/shadow.link',
      'etc/ssl/private/web.key',
    ]);
    // A key the Profile's listing did not name is sealed from the tree's own bytes.
    expect(exclusion.unlisted).toEqual(['/etc/ssl/private/web.key']);
    expect(sealed).toEqual(new Map([['/etc/ssl/private/web.key', 'KEY BODY']]));
  });
});
