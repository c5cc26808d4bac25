import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tags } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/** The tag keys every resource carries: the application's name and version. */
export const APPLICATION_TAGS = { name: 'persona:application', version: 'persona:version' } as const;

/**
 * Persona's name and version from its package.json: the nearest one above this module, so the
 * same holds in this repository and in the package another app installs.
 */
export function applicationIdentity(): { readonly name: string; readonly version: string } {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (typeof pkg.name !== 'string' || typeof pkg.version !== 'string')
        throw new Error(`${file} names no application name and version`);
      return { name: pkg.name, version: pkg.version };
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('no package.json above infra/: cannot tell Persona’s version');
    dir = parent;
  }
}

// The characters CloudFormation accepts in tags of every resource type that takes them.
const TAG_KEY = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u;
const TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$/u;

/**
 * Tags everything under `scope` with the application's name and version, then `extra` (which
 * may not change those two). A key or value AWS would refuse is refused here, by name.
 */
export function tagApplication(scope: IConstruct, extra: Readonly<Record<string, string>> = {}): void {
  for (const [key, value] of Object.entries(extra)) {
    if (key === APPLICATION_TAGS.name || key === APPLICATION_TAGS.version)
      throw new Error(`tags.${key}: Persona sets this tag itself (the application's name and version)`);
    if (key.toLowerCase().startsWith('aws:')) throw new Error(`tags.${key}: the aws: prefix is AWS's own`);
    if (!TAG_KEY.test(key))
      throw new Error(`tags.${key}: not a tag key AWS accepts (1–128 letters, digits, spaces, _.:/=+-@)`);
    if (!TAG_VALUE.test(value))
      throw new Error(
        `tags.${key}: its value is not one AWS accepts (up to 256 letters, digits, spaces, _.:/=+-@)`,
      );
  }
  const identity = applicationIdentity();
  Tags.of(scope).add(APPLICATION_TAGS.name, identity.name);
  Tags.of(scope).add(APPLICATION_TAGS.version, identity.version);
  for (const [key, value] of Object.entries(extra)) Tags.of(scope).add(key, value);
}
