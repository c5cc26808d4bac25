// RPM package names, EVRs and NEVRAs, and rpm's own ordering of versions (rpmvercmp). What a
// Profile or a host says about an rpm package is data: anything outside this grammar is refused.
import { InvalidInputError } from '../errors.js';
import { displayValue } from '../transport/shell.js';

// rpm itself allows more in a name, but no package of a RHEL-family distribution uses it, and
// every extra character is one more a command line would have to carry.
const NAME = /^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$/;
/** Version and release: no `-` (it separates them), no whitespace, no shell or macro characters. */
const VR = /^[A-Za-z0-9._+~^]+$/;
const EPOCH = /^[0-9]{1,9}$/;
const ARCH = /^[A-Za-z0-9_]+$/;
const MAX_LENGTH = 256;

export interface Evr {
  readonly epoch: number;
  readonly version: string;
  /** Absent when only a version was given: it then matches every release. */
  readonly release?: string;
}

function invalid(field: string, value: string, why: string): InvalidInputError {
  return new InvalidInputError(`${field} ${displayValue(value)} is not an RPM ${why}`, [
    { path: field, message: `not an RPM ${why}` },
  ]);
}

export function checkRpmName(value: string, field: string): string {
  if (value.length > MAX_LENGTH || !NAME.test(value)) {
    throw invalid(field, value, 'package name (letters, digits, "_", "+", ".", "-")');
  }
  return value;
}

export function checkRpmArch(value: string, field: string): string {
  if (value.length > 32 || !ARCH.test(value)) throw invalid(field, value, 'architecture');
  return value;
}

/** `[epoch:]version[-release]`. */
export function parseEvr(value: string, field = 'version'): Evr {
  if (value.length === 0 || value.length > MAX_LENGTH) throw invalid(field, value, 'version');
  const colon = value.indexOf(':');
  const epochText = colon < 0 ? '0' : value.slice(0, colon);
  if (!EPOCH.test(epochText)) throw invalid(field, value, 'version (the epoch is not a number)');
  const rest = colon < 0 ? value : value.slice(colon + 1);
  const parts = rest.split('-');
  if (parts.length > 2) throw invalid(field, value, 'version (more than one "-")');
  const [version = '', release] = parts;
  if (!VR.test(version)) throw invalid(field, value, 'version');
  if (release !== undefined && !VR.test(release)) throw invalid(field, value, 'version (bad release)');
  return release === undefined
    ? { epoch: Number(epochText), version }
    : { epoch: Number(epochText), version, release };
}

export const formatEvr = (evr: Evr): string =>
  `${evr.epoch > 0 ? `${evr.epoch}:` : ''}${evr.version}${evr.release === undefined ? '' : `-${evr.release}`}`;

export interface Nevra extends Evr {
  readonly name: string;
  readonly arch: string;
}

/**
 * `name-[epoch:]version-release.arch`, as rpm and dnf print a package: the release and arch are
 * found from the right, since names hold hyphens and versions hold dots.
 */
export function parseNevra(value: string, field = 'package'): Nevra {
  const dot = value.lastIndexOf('.');
  const releaseDash = value.lastIndexOf('-', dot);
  const versionDash = value.lastIndexOf('-', releaseDash - 1);
  if (dot < 0 || releaseDash < 0 || versionDash <= 0) throw invalid(field, value, 'NEVRA');
  const name = checkRpmName(value.slice(0, versionDash), field);
  const arch = checkRpmArch(value.slice(dot + 1), field);
  const evr = parseEvr(value.slice(versionDash + 1, dot), field);
  if (evr.release === undefined) throw invalid(field, value, 'NEVRA');
  return { name, arch, ...evr };
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isAlpha = (c: string | undefined) =>
  c !== undefined && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
const isAlnum = (c: string | undefined) => isDigit(c) || isAlpha(c);

/**
 * rpm's ordering of two versions or two releases: separators are skipped, runs of digits
 * compare as numbers and beat runs of letters, `~` sorts before everything (even the end) and
 * `^` after the end but before anything else. Negative, zero or positive, as rpmvercmp returns.
 */
export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while (i < a.length && !isAlnum(a[i]) && a[i] !== '~' && a[i] !== '^') i++;
    while (j < b.length && !isAlnum(b[j]) && b[j] !== '~' && b[j] !== '^') j++;
    if (a[i] === '~' || b[j] === '~') {
      if (a[i] !== '~') return 1;
      if (b[j] !== '~') return -1;
      i++;
      j++;
      continue;
    }
    if (a[i] === '^' || b[j] === '^') {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== '^') return 1;
      if (b[j] !== '^') return -1;
      i++;
      j++;
      continue;
    }
    if (i >= a.length || j >= b.length) break;
    const numeric = isDigit(a[i]);
    const same = numeric ? isDigit : isAlpha;
    let sa = '';
    let sb = '';
    while (same(a[i])) sa += a[i++];
    while (same(b[j])) sb += b[j++];
    // A digit run against a letter run: the digits are newer.
    if (sb === '') return numeric ? 1 : -1;
    if (numeric) {
      sa = sa.replace(/^0+/, '');
      sb = sb.replace(/^0+/, '');
      if (sa.length !== sb.length) return sa.length < sb.length ? -1 : 1;
    }
    if (sa !== sb) return sa < sb ? -1 : 1;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

/** Epoch, then version, then release (when both have one), each by rpmvercmp. */
export function compareEvr(a: Evr, b: Evr): number {
  if (a.epoch !== b.epoch) return a.epoch < b.epoch ? -1 : 1;
  const byVersion = rpmvercmp(a.version, b.version);
  if (byVersion !== 0 || a.release === undefined || b.release === undefined) return byVersion;
  return rpmvercmp(a.release, b.release);
}

export const compareRpmVersions = (a: string, b: string): number =>
  compareEvr(parseEvr(a, 'a'), parseEvr(b, 'b'));
