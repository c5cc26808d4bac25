// Security: users and groups, password states (the hashes themselves go to the secret store),
// sudo rules, and authorized SSH keys by fingerprint.
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { Group, SshKey, SudoRule, User } from '../../profile/schema.js';
import { redactCommand } from '../secrets.js';
import { lines, partWith } from '../sections.js';
import { int, type ParseContext } from './context.js';

type UserInput = z.input<typeof User>;
type GroupInput = z.input<typeof Group>;
type SudoInput = z.input<typeof SudoRule>;
type SshKeyInput = z.input<typeof SshKey>;

export interface ParsedSecurity {
  readonly users: UserInput[];
  readonly groups: GroupInput[];
  readonly sudoers: SudoInput[];
  readonly sshKeys: SshKeyInput[];
}

/** The first uid of ordinary users when login.defs does not say (Debian, RHEL and Alpine agree). */
const DEFAULT_UID_MIN = 1000;
const NOBODY = 65534;

/**
 * What /etc/shadow's password field says: empty (no password), locked with no password
 * ("*", "!", "!!", "!*"), or a hash, possibly locked ("!$6$..."). The hash never leaves here
 * except as a secret.
 */
export function passwordState(field: string): { locked: boolean; hash?: string } {
  const locked = field.startsWith('!') || field.startsWith('*');
  const hash = field.replace(/^[!*]+/, '');
  return hash === '' ? { locked } : { locked, hash };
}

export function parseSecurity(ctx: ParseContext): ParsedSecurity {
  const usersSection = ctx.section('users');
  const groupsSection = ctx.section('groups');
  const shadowSection = ctx.section('shadow');

  const uidMin =
    int(/UID_MIN\s+(\d+)/.exec(partWith(usersSection, 'login.defs')?.text ?? '')?.[1]) ?? DEFAULT_UID_MIN;

  const groups: GroupInput[] = [];
  const memberOf = new Map<string, string[]>();
  for (const line of lines(groupsSection?.text ?? '')) {
    const [name, , gidText, members = ''] = line.split(':');
    const gid = int(gidText);
    if (!name || gid === undefined || name.startsWith('+') || name.startsWith('-')) continue;
    const list = members.split(',').filter(Boolean);
    groups.push({ name, gid, members: list });
    for (const m of list) memberOf.set(m, [...(memberOf.get(m) ?? []), name]);
  }

  const shadow = new Map<string, string>();
  for (const line of lines(shadowSection?.status === 0 ? shadowSection.text : '')) {
    const colon = line.indexOf(':');
    if (colon > 0) shadow.set(line.slice(0, colon), line.slice(colon + 1));
  }

  const users: UserInput[] = [];
  for (const line of lines(usersSection?.parts.find((p) => p.header === '')?.text ?? '')) {
    const [name, , uidText, gidText, , home, shell] = line.split(':');
    const uid = int(uidText);
    const gid = int(gidText);
    if (!name || uid === undefined || gid === undefined || name.startsWith('+') || name.startsWith('-'))
      continue;
    const field = shadow.get(name);
    const state = field === undefined ? undefined : passwordState(field);
    users.push({
      name,
      uid,
      gid,
      ...(home?.startsWith('/') ? { home } : {}),
      ...(shell?.startsWith('/') ? { shell } : {}),
      groups: memberOf.get(name) ?? [],
      system: uid < uidMin || uid === NOBODY,
      ...(state === undefined ? {} : { locked: state.locked }),
      ...(state?.hash === undefined
        ? {}
        : { passwordRef: ctx.secrets.add('password-hash', name, state.hash) }),
    });
  }

  return {
    users: ctx.keep('users', User, users, (u) => u.name, 'user'),
    groups: ctx.keep('groups', Group, groups, (g) => g.name, 'group'),
    sudoers: ctx.keep('sudoers', SudoRule, parseSudoers(ctx), (s) => s.principal, 'sudo principal'),
    sshKeys: ctx.keep(
      'sshkeys',
      SshKey,
      parseAuthorizedKeys(ctx),
      (k) => `${k.user}:${k.fingerprint}`,
      'SSH key',
    ),
  };
}

// Lines that configure sudo itself rather than grant anything to anyone.
const NOT_A_RULE = /^(Defaults\b|(User|Runas|Host|Cmnd|Cmd)_Alias\b|[@#]include)/;

/** sudo rules grouped by who they are for, in the order sudo reads them. */
export function parseSudoers(ctx: ParseContext): SudoInput[] {
  const section = ctx.section('sudoers');
  const byPrincipal = new Map<string, string[]>();
  for (const part of section?.parts ?? []) {
    if (part.header === '') continue;
    const joined = part.text.replace(/\\\r?\n/g, ' ');
    for (const raw of lines(joined)) {
      // "#" starts a comment, except in "#include" and in a uid ("#1000 ALL=...").
      const line = raw.replace(/(^|\s)#(?!\d|include).*$/, '').trim();
      if (line === '' || NOT_A_RULE.test(line)) continue;
      const m = /^(\S+)\s+(.+)$/.exec(line);
      if (!m?.[1] || !m[2]) continue;
      const rules = byPrincipal.get(m[1]) ?? [];
      // A rule's command may carry a credential (`NOPASSWD: /usr/bin/mysql -psecret`).
      const rule = redactCommand(m[2].replace(/\s+/g, ' '));
      if (!rules.includes(rule)) rules.push(rule);
      byPrincipal.set(m[1], rules);
    }
  }
  return [...byPrincipal].map(([principal, rules]) => ({ principal, rules }));
}

const KEY_TYPE =
  /(?:^|\s)((?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)(?:-cert-v01@openssh\.com)?) ([A-Za-z0-9+/]+={0,3})(?:\s+(.*))?$/;

/** The OpenSSH SHA256 fingerprint of a public key blob, as `ssh-keygen -lf` prints it. */
export const fingerprint = (blob: string): string =>
  `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;

/**
 * Keys from each user's authorized_keys. The Profile holds the fingerprint; the whole line (key
 * and options such as from= or command=) goes beside it as a reference, so a clone can restore
 * it. Fingerprints are computed here rather than with ssh-keygen, which a host may not have.
 */
export function parseAuthorizedKeys(ctx: ParseContext): SshKeyInput[] {
  const section = ctx.section('sshkeys');
  const found: SshKeyInput[] = [];
  for (const part of section?.parts ?? []) {
    const [user] = part.header.split(' ');
    if (!user) continue;
    for (const raw of lines(part.text)) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const m = KEY_TYPE.exec(line);
      if (!m?.[1] || !m[2]) {
        ctx.unknown(
          'sshkeys',
          `a line of ${part.header.split(' ')[1] ?? 'authorized_keys'} is not a public key`,
        );
        continue;
      }
      const print = fingerprint(m[2]);
      const comment = m[3]?.trim();
      found.push({
        user,
        type: m[1],
        fingerprint: print,
        ...(comment ? { comment } : {}),
        keyRef: ctx.secrets.add('ssh-public-key', `${user}/${print}`, line),
      });
    }
  }
  return found;
}
