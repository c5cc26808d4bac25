// Version grammar and ordering of both families: Debian's by policy 5.6.12 (checked against the
// control machine's own dpkg on generated versions), rpm's by rpmvercmp's rules.
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import { checkDebianName, compareDebianVersions, parseDebianVersion } from '../../../core/resolver/debian.js';
import {
  checkRpmName,
  compareEvr,
  compareRpmVersions,
  parseEvr,
  parseNevra,
  rpmvercmp,
} from '../../../core/resolver/rpm.js';
import { shellQuote } from '../../../core/transport/shell.js';

const sign = (n: number) => Math.sign(n) || 0;

// Versions built from the characters that matter to the ordering: digits, letters, `.`, `+`,
// `~`, with optional epoch and revision.
const upstreamPart = fc.stringMatching(/^[0-9][0-9a-z.+~]{0,7}$/);
const revisionPart = fc.stringMatching(/^[0-9a-z.+~]{1,5}$/);
const debianVersion = fc
  .tuple(fc.option(fc.integer({ min: 0, max: 3 })), upstreamPart, fc.option(revisionPart))
  .map(([epoch, up, rev]) => `${epoch === null ? '' : `${epoch}:`}${up}${rev === null ? '' : `-${rev}`}`);

// Pairs that share a prefix, so that the comparison is decided where the rules are subtle: a
// tilde against the end, a letter against a digit, `+` against a letter.
const tail = fc.stringMatching(/^[0-9a~+.]{0,4}$/);
const debianPair = fc
  .tuple(
    fc.stringMatching(/^[0-9][0-9.]{0,3}$/),
    tail,
    tail,
    fc.option(fc.tuple(fc.stringMatching(/^[0-9]{1,2}$/), tail, tail)),
    fc.constantFrom('', '1:'),
  )
  .map(([prefix, a, b, revision, epoch]) => {
    const rev = (t: string) => (revision ? `-${revision[0]}${t}` : '');
    return [
      `${prefix}${a}${rev(revision?.[1] ?? '')}`,
      `${epoch}${prefix}${b}${rev(revision?.[2] ?? '')}`,
    ] as const;
  });

const rpmPart = fc.stringMatching(/^[0-9a-zA-Z._+~^]{1,8}$/);

describe('Debian versions', () => {
  it.each([
    ['1.0', '1.0.1', -1],
    ['1.0~rc1', '1.0', -1],
    ['1.0~~', '1.0~', -1],
    ['1.0', '1.0a', -1],
    ['1.0', '1.0+b1', -1],
    ['1.0a', '1.0+', -1],
    ['1:0.1', '2.0', 1],
    ['1.0-1', '1.0-2', -1],
    ['1.0-9', '1.0-10', -1],
    ['2.1.0-1', '2.1.0-1+b1', -1],
    ['1.0', '1.00', 0],
    ['1.0', '1.0-0', 0],
    ['0:1.0', '1.0', 0],
    ['5.2.15-2+b8', '5.2.15-2+b13', -1],
    ['10', '9', 1],
    ['1.2.3', '1.2.3~', 1],
  ])('%s against %s is %i', (a, b, expected) => {
    expect(sign(compareDebianVersions(a, b))).toBe(expected);
    expect(sign(compareDebianVersions(b, a))).toBe(sign(-expected));
  });

  it('orders generated versions exactly as the control machine’s dpkg does', () => {
    const pairs = [
      ...fc.sample(fc.tuple(debianVersion, debianVersion), { numRuns: 100, seed: 20261201 }),
      ...fc.sample(debianPair, { numRuns: 400, seed: 20261202 }),
    ];
    const script = pairs
      .map(
        ([a, b]) =>
          `if dpkg --compare-versions ${shellQuote(a)} lt ${shellQuote(b)}; then echo -1; elif dpkg --compare-versions ${shellQuote(a)} eq ${shellQuote(b)}; then echo 0; else echo 1; fi`,
      )
      .join('\n');
    const dpkg = execFileSync('sh', ['-c', script], { encoding: 'utf8' }).trim().split('\n').map(Number);
    const ours = pairs.map(([a, b]) => sign(compareDebianVersions(a, b)));
    const differ = pairs.filter((_, i) => ours[i] !== dpkg[i]).map((p) => p.join(' vs '));
    expect(differ).toEqual([]);
  });

  it('is an ordering: reflexive, antisymmetric and transitive', () => {
    fc.assert(
      fc.property(debianVersion, debianVersion, debianVersion, (a, b, c) => {
        expect(compareDebianVersions(a, a)).toBe(0);
        expect(sign(compareDebianVersions(a, b))).toBe(sign(-sign(compareDebianVersions(b, a))));
        const [x, y, z] = [a, b, c].sort(compareDebianVersions) as [string, string, string];
        expect(compareDebianVersions(x, z)).toBeLessThanOrEqual(0);
        expect(compareDebianVersions(x, y)).toBeLessThanOrEqual(0);
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    '',
    'a1.0',
    '1.0-',
    ':1.0',
    'x:1.0',
    '1:2:3',
    '1.0 ; touch /pwned',
    '$(touch /pwned)',
    '1.0\n2.0',
    '-1.0',
    '1.0_1',
    `1${'0'.repeat(300)}`,
  ])('refuses version %j naming the field', (bad) => {
    const caught = (() => {
      try {
        parseDebianVersion(bad, 'packages[2].version');
      } catch (e) {
        return e;
      }
    })();
    expect(caught).toBeInstanceOf(InvalidInputError);
    expect((caught as InvalidInputError).issues).toEqual([
      { path: 'packages[2].version', message: expect.stringContaining('not a Debian version') },
    ]);
  });

  it('splits epoch, upstream and revision at the first colon and the last hyphen', () => {
    expect(parseDebianVersion('2:1.2-3-4')).toEqual({ epoch: 2n, upstream: '1.2-3', revision: '4' });
    expect(parseDebianVersion('1.2')).toEqual({ epoch: 0n, upstream: '1.2', revision: '' });
  });

  it.each(['tree', 'libc6:amd64', 'g++', 'lib32z1', 'python3.11', 'x.y+z-w'])('accepts name %s', (name) => {
    expect(() => checkDebianName(name, 'n')).not.toThrow();
  });

  it.each([
    '',
    't',
    'Tree',
    '-tree',
    '.tree',
    'tree;ls',
    'tree ls',
    '--force-all',
    'tree:',
    'tree:AMD64',
    'tre\u0000e',
  ])('refuses name %j naming the field', (name) => {
    expect(() => checkDebianName(name, 'packages[0].name')).toThrow(
      expect.objectContaining({
        code: 'INVALID_INPUT',
        issues: [expect.objectContaining({ path: 'packages[0].name' })],
      }),
    );
  });
});

describe('rpm versions (rpmvercmp)', () => {
  it.each([
    ['1.0', '1.0', 0],
    ['1.0', '1.0.1', -1],
    ['2.0', '1.99', 1],
    ['1.01', '1.1', 0],
    ['1.0', '1_0', 0],
    ['fc4', 'fc.4', 0],
    ['1.0a', '1.0', 1],
    ['1', 'a', 1],
    ['1.0a', '1.0.1', -1],
    ['1.0~rc1', '1.0', -1],
    ['1.0~rc1', '1.0~rc2', -1],
    ['1.0~~', '1.0~', -1],
    ['1.0^git1', '1.0', 1],
    ['1.0^git1', '1.0.1', -1],
    ['1.0^', '1.0', 1],
    ['1.0~rc1^git1', '1.0~rc1', 1],
    ['el9_1', 'el9', 1],
    ['10', '9', 1],
    ['0010', '9', 1],
  ])('%s against %s is %i', (a, b, expected) => {
    expect(sign(rpmvercmp(a, b))).toBe(expected);
    expect(sign(rpmvercmp(b, a))).toBe(sign(-expected));
  });

  it('is an ordering on generated versions: reflexive, antisymmetric and transitive', () => {
    fc.assert(
      fc.property(rpmPart, rpmPart, rpmPart, (a, b, c) => {
        expect(rpmvercmp(a, a)).toBe(0);
        expect(sign(rpmvercmp(a, b))).toBe(sign(-sign(rpmvercmp(b, a))));
        const [x, , z] = [a, b, c].sort(rpmvercmp) as [string, string, string];
        expect(rpmvercmp(x, z)).toBeLessThanOrEqual(0);
      }),
      { numRuns: 1000 },
    );
  });

  it('compares epoch first, then version, then release when both have one', () => {
    expect(compareRpmVersions('1:1.0-1', '2.0-1')).toBeGreaterThan(0);
    expect(compareRpmVersions('1.0-1.el9', '1.0-2.el9')).toBeLessThan(0);
    expect(compareRpmVersions('0:1.0-1.el9', '1.0-1.el9')).toBe(0);
    // A version without a release matches every release of it.
    expect(compareEvr(parseEvr('1.0'), parseEvr('1.0-5.el9'))).toBe(0);
  });

  it('reads a NEVRA from the right: names hold hyphens, versions hold dots', () => {
    expect(parseNevra('perl-Net-SSLeay-1.92-2.el9.x86_64')).toEqual({
      name: 'perl-Net-SSLeay',
      epoch: 0,
      version: '1.92',
      release: '2.el9',
      arch: 'x86_64',
    });
    expect(parseNevra('shadow-utils-2:4.9-6.el9.x86_64')).toMatchObject({
      name: 'shadow-utils',
      epoch: 2,
      version: '4.9',
      release: '6.el9',
    });
    expect(() => parseNevra('bash.x86_64')).toThrow(InvalidInputError);
  });

  it.each(['', '1.0-1-1', '1.0 -1', 'a:1.0', '1.0;ls', '$(id)', '%{_bindir}', '1.0-'])(
    'refuses version %j naming the field',
    (bad) => {
      expect(() => parseEvr(bad, 'packages[1].version')).toThrow(
        expect.objectContaining({ issues: [expect.objectContaining({ path: 'packages[1].version' })] }),
      );
    },
  );

  it.each(['', '-bash', 'bash;id', 'ba sh', '%{x}', 'bash\n'])('refuses name %j naming the field', (bad) => {
    expect(() => checkRpmName(bad, 'packages[1].name')).toThrow(
      expect.objectContaining({ issues: [expect.objectContaining({ path: 'packages[1].name' })] }),
    );
  });
});
