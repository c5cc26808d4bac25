// Where target profiles come from: a folder of YAML files (examples/targets/ in the embedded
// runtime; the folder bundled with the function in AWS), each file named after its target.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidInputError, NotFoundError } from '../errors.js';
import { parseTarget, type TargetProfile } from './target.js';

export interface TargetCatalog {
  list(): Promise<readonly TargetProfile[]>;
  get(name: string): Promise<TargetProfile>;
}

const FILE = /^([a-z0-9][a-z0-9-]{0,62})\.ya?ml$/;

/** The targets of a folder; a file whose name is not its target's is refused, naming both. */
export class FolderTargetCatalog implements TargetCatalog {
  constructor(private readonly folder: string) {}

  async list(): Promise<readonly TargetProfile[]> {
    const names = (await readdir(this.folder)).filter((f) => FILE.test(f)).sort();
    return Promise.all(names.map((f) => this.read(f)));
  }

  async get(name: string): Promise<TargetProfile> {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name))
      throw new InvalidInputError(`${JSON.stringify(name)} is not a target name`, [
        { path: 'target', message: 'expected lower-case letters, digits and "-", not starting with "-"' },
      ]);
    const files = await readdir(this.folder);
    const file = files.find((f) => f === `${name}.yaml` || f === `${name}.yml`);
    if (file === undefined) throw new NotFoundError(`there is no target profile ${name}`, name);
    return this.read(file);
  }

  private async read(file: string): Promise<TargetProfile> {
    const target = parseTarget(await readFile(join(this.folder, file)), file);
    const stem = FILE.exec(file)?.[1];
    if (stem !== target.metadata.name)
      throw new InvalidInputError(`${file} holds target ${target.metadata.name}, not ${stem}`, [
        { path: 'metadata.name', message: `must be ${stem}, as the file is named` },
      ]);
    return target;
  }
}
