// Where target profiles come from: a folder of YAML or JSON files (examples/targets/ in the
// embedded runtime; in AWS the function's folder, where the stack puts them as JSON so that
// reading them does not load the YAML parser), each file named after its target.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidInputError, NotFoundError } from '../errors.js';
import { readTarget, type TargetProfile } from './target.js';

export interface TargetCatalog {
  list(): Promise<readonly TargetProfile[]>;
  get(name: string): Promise<TargetProfile>;
}

const FILE = /^([a-z0-9][a-z0-9-]{0,62})\.(ya?ml|json)$/;

/**
 * The targets of a folder; a file whose name is not its target's is refused, naming both, and so
 * is a target that two files define (`web.yaml` and `web.json`).
 */
export class FolderTargetCatalog implements TargetCatalog {
  constructor(private readonly folder: string) {}

  async list(): Promise<readonly TargetProfile[]> {
    const files = [...(await this.files()).values()].sort();
    return Promise.all(files.map((f) => this.read(f)));
  }

  async get(name: string): Promise<TargetProfile> {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name))
      throw new InvalidInputError(`${JSON.stringify(name)} is not a target name`, [
        { path: 'target', message: 'expected lower-case letters, digits and "-", not starting with "-"' },
      ]);
    const file = (await this.files()).get(name);
    if (file === undefined) throw new NotFoundError(`there is no target profile ${name}`, name);
    return this.read(file);
  }

  /** The file of each target, by the target's name. */
  private async files(): Promise<Map<string, string>> {
    const byName = new Map<string, string>();
    for (const file of (await readdir(this.folder)).sort()) {
      const name = FILE.exec(file)?.[1];
      if (name === undefined) continue;
      const other = byName.get(name);
      if (other !== undefined)
        throw new InvalidInputError(`target ${name} is defined by both ${other} and ${file}`, [
          { path: 'metadata.name', message: `${name} is in ${other} and ${file}: keep one` },
        ]);
      byName.set(name, file);
    }
    return byName;
  }

  private async read(file: string): Promise<TargetProfile> {
    const target = await readTarget(await readFile(join(this.folder, file)), file);
    const stem = FILE.exec(file)?.[1];
    if (stem !== target.metadata.name)
      throw new InvalidInputError(`${file} holds target ${target.metadata.name}, not ${stem}`, [
        { path: 'metadata.name', message: `must be ${stem}, as the file is named` },
      ]);
    return target;
  }
}
