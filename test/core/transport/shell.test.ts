import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { snapshotPaths } from '../../../core/capture/operation.js';
import { InvalidInputError } from '../../../core/errors.js';
import { checkPath, PATH_MAX_BYTES, pathProblem, relativeToRoot } from '../../../core/transport/paths.js';
import {
  atomicWriteScript,
  describeCommand,
  displayValue,
  sh,
  shellCommand,
  shellQuote,
  shellWords,
} from '../../../core/transport/shell.js';
import { hostileString } from './hostile.js';

/** What `sh -c command` writes on stdout, as bytes. */
const runSh = (command: string): Buffer => execFileSync('sh', ['-c', command]);

function thrown(fn: () => unknown): InvalidInputError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  throw new Error('expected an InvalidInputError');
}

describe('shellQuote', () => {
  it('makes any string exactly one argument, byte for byte, for this machine’s sh', () => {
    fc.assert(
      fc.property(hostileString, (value) => {
        const out = runSh(sh`printf '%s\\0' ${value}`);
        expect(out.equals(Buffer.concat([Buffer.from(value, 'utf8'), Buffer.from([0])]))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('keeps a value whole through the environment and the sh -c wrapper the transports add', () => {
    fc.assert(
      fc.property(hostileString, hostileString, (value, arg) => {
        const inner = sh`printf '%s\\0' "$V" ${arg}`;
        const out = runSh(shellCommand(inner, { V: value }));
        const expected = Buffer.from(`${value}\0${arg}\0`, 'utf8');
        expect(out.equals(expected)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('refuses a NUL, naming the field, since no argument can hold one', () => {
    const error = thrown(() => shellQuote('/etc/passwd\0--help', 'paths[3]'));
    expect(error.issues).toEqual([{ path: 'paths[3]', message: 'contains a NUL byte' }]);
    expect(error.message).toContain('"/etc/passwd\\x00--help"');
    expect(thrown(() => sh`cat -- ${['ok', 'a\0b']}`).issues[0]?.path).toBe('argument[1]');
  });

  it('refuses a lone surrogate, which would reach the host as another character', () => {
    expect(thrown(() => shellQuote('a\ud800b')).issues[0]?.message).toBe('holds a lone surrogate');
  });

  it('quotes the empty string as an empty argument, not as no argument', () => {
    expect(runSh(sh`printf '[%s]' ${''} ${[]}`).toString()).toBe('[]');
  });
});

describe('sh', () => {
  it('leaves the literal text alone and makes each value, or each element of a list, one word', () => {
    expect(sh`tar -cf - -C / -- ${['etc', 'srv/my app']}`).toBe("tar -cf - -C / -- 'etc' 'srv/my app'");
    expect(sh`exit ${44}`).toBe("exit '44'");
    expect(runSh(sh`printf '%s|' ${['a b', '*', "it's"]} ${'$(id)'}`).toString()).toBe("a b|*|it's|$(id)|");
  });

  it('names the elements of a list in its error', () => {
    expect(thrown(() => shellWords(['x', 'y\0'], 'processes')).issues[0]?.path).toBe('processes[1]');
  });
});

describe('describeCommand', () => {
  it('shows a command on one line with the escape sequences in its data escaped', () => {
    expect(describeCommand(sh`cat -- ${'/srv/\x1b]0;owned\x07'}\necho done`)).toBe(
      "cat -- '/srv/\\x1b]0;owned\\x07' echo done",
    );
  });
});

describe('displayValue', () => {
  it('shows control characters, quotes and text-reordering characters escaped', () => {
    expect(displayValue('a\nb\x1b[2J"\\\x7f\u202e')).toBe('"a\\nb\\x1b[2J\\"\\\\\\x7f\\u{202e}"');
  });

  it('cuts a long value and says how long it was', () => {
    expect(displayValue('x'.repeat(500), 10)).toBe('"xxxxxxxxxx… (500 characters)"');
  });
});

describe('the path grammar', () => {
  it('accepts absolute, normalised paths, spaces and quotes included', () => {
    for (const p of ['/srv/shop', '/opt/my app/conf', "/srv/it's", '/srv/$(x)', '/srv/-dash-later', '/é']) {
      expect(pathProblem(p)).toBeUndefined();
    }
    expect(relativeToRoot('/srv/shop', 'paths[0]')).toBe('srv/shop');
  });

  it.each([
    ['', 'is empty'],
    ['srv/shop', 'is not absolute'],
    ['/', 'is the root directory itself'],
    ['/-rf', 'starts with "-"'],
    ['/--checkpoint-action=exec=sh', 'starts with "-"'],
    ['//-rf', 'not in normal form'],
    ['/srv//shop', 'not in normal form (an empty name): write "/srv/shop"'],
    ['/srv/shop/', 'not in normal form'],
    ['/srv/../etc', '"." or ".." name'],
    ['/srv/./x', '"." or ".." name'],
    ['/srv/a\nb', 'control character'],
    ['/srv/a\0b', 'control character'],
    ['/srv/a\x7f', 'control character'],
    ['/srv/a\x9b', 'control character'],
    ['/srv/\x1b]0;owned\x07', 'control character'],
    ['/srv/a\ud800', 'lone surrogate'],
    [`/${'a'.repeat(256)}`, 'longer than 255 bytes'],
    [`/${'abcdefgh/'.repeat(500)}x`, `longer than ${PATH_MAX_BYTES} bytes`],
  ])('refuses path %# (%s)', (path, reason) => {
    expect(pathProblem(path)).toContain(reason);
  });

  it('names the field and shows the value escaped in its error', () => {
    const error = thrown(() => checkPath('/srv/\x1b[2Jx', 'paths[1]'));
    expect(error.issues[0]?.path).toBe('paths[1]');
    expect(error.message).toBe('paths[1] "/srv/\\x1b[2Jx" contains a control character');
    expect(error.message).not.toContain('\x1b');
  });
});

describe('snapshotPaths', () => {
  it('gives the trees relative to "/", with /etc, and leaves out one inside another', () => {
    expect(snapshotPaths({ paths: ['/srv/shop', '/etc/nginx', '/srv/shop/data', '/opt/a b'] })).toEqual([
      'etc',
      'srv/shop',
      'opt/a b',
    ]);
  });

  it('refuses a stored path the grammar refuses, naming it', () => {
    const error = thrown(() => snapshotPaths({ paths: ['/srv/ok', '/--to-command=sh'] }));
    expect(error.issues[0]?.path).toBe('paths[1]');
  });
});

describe('atomicWriteScript', () => {
  const dir = mkdtempSync(join(tmpdir(), 'persona-shell-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes exactly the file named, whatever its name holds, and nothing else', () => {
    const path = join(dir, "it's $(touch pwned) `id` *;\n-x");
    execFileSync('sh', ['-c', atomicWriteScript(path, 'cat', 0o640)], { input: 'content' });
    expect(readFileSync(path, 'utf8')).toBe('content');
    expect(statSync(path).mode & 0o7777).toBe(0o640);
    expect(readdirSync(dir)).toEqual([path.slice(dir.length + 1)]);
  });
});
