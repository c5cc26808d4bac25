// Canaries around a restore target: a directory `dir` holding files, a directory and symlinks
// to them beside `dir/target`. A restore that writes anywhere but inside the target changes one
// of them (content, mode, owner, times, link count, type) or adds something beside them.
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';

export interface Canaries {
  /** The directory holding the canaries and the target. */
  readonly dir: string;
  /** Where the restore goes: `dir/target`, empty. */
  readonly target: string;
  /** A directory outside the target, with a file in it: what hostile links point at. */
  readonly outside: string;
  /** A regular file outside the target. */
  readonly file: string;
  /** Everything about the canaries, to compare with `picture()` after the restore. */
  readonly before: Map<string, string>;
  /** The canaries now. */
  picture(): Map<string, string>;
}

/** Every path under `dir` except `target`'s contents, with all that lstat and the content say. */
function picture(dir: string, target: string): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (path: string) => {
    const s = lstatSync(path, { bigint: true });
    const type = s.isSymbolicLink()
      ? `symlink ${readlinkSync(path)}`
      : s.isFile()
        ? `file ${createHash('sha256').update(readFileSync(path)).digest('hex')}`
        : s.isDirectory()
          ? 'dir'
          : s.isFIFO()
            ? 'fifo'
            : `special ${s.rdev}`;
    // ctime moves on any chmod, chown, utime, link or write, even one that sets the same values.
    out.set(
      path,
      `${type} mode=${(s.mode & 0o7777n).toString(8)} owner=${s.uid}:${s.gid} size=${s.size} nlink=${s.nlink} ino=${s.ino} mtime=${s.mtimeNs} ctime=${s.ctimeNs}`,
    );
    if (s.isDirectory() && path !== target)
      for (const name of readdirSync(path).sort()) visit(join(path, name));
  };
  visit(dir);
  // The target itself changes (its children); the restore may set nothing else outside.
  out.delete(target);
  return out;
}

export async function plantCanaries(dir: string): Promise<Canaries> {
  const outside = join(dir, 'outside');
  const target = join(dir, 'target');
  await fs.mkdir(join(outside, 'cron.d'), { recursive: true });
  await fs.mkdir(target);
  const file = join(dir, 'canary');
  await fs.writeFile(file, 'canary outside the target\n');
  await fs.writeFile(join(outside, 'shadow'), 'root:$6$canary:19000:0:99999:7:::\n');
  await fs.writeFile(join(outside, 'cron.d', 'job'), '* * * * * root true\n');
  await fs.symlink(outside, join(dir, 'outside-link'));
  await fs.symlink('canary', join(dir, 'canary-link'));
  // Owners and modes a restore would not choose, times in the past: a chown, chmod or utime shows.
  for (const [path, mode] of [
    [file, 0o640],
    [join(outside, 'shadow'), 0o600],
    [join(outside, 'cron.d', 'job'), 0o644],
    [join(outside, 'cron.d'), 0o750],
    [outside, 0o711],
  ] as const) {
    await fs.chown(path, 4321, 4322);
    await fs.chmod(path, mode);
    await fs.utimes(path, 1_500_000_000, 1_500_000_000);
  }
  await fs.lchown(join(dir, 'outside-link'), 4321, 4322);
  await fs.lutimes(join(dir, 'outside-link'), 1_500_000_000, 1_500_000_000);
  await fs.utimes(dir, 1_500_000_000, 1_500_000_000);
  return {
    dir,
    target,
    outside,
    file,
    before: picture(dir, target),
    picture: () => picture(dir, target),
  };
}
