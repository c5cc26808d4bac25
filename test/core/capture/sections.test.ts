import { describe, expect, it } from 'vitest';
import { IncompleteCaptureError, UnsupportedHostError } from '../../../core/capture/errors.js';
import { parseSections } from '../../../core/capture/sections.js';
import { fixture } from './helpers.js';

const SECTIONS = [
  'sample-start',
  'os',
  'release',
  'cloud',
  'packages',
  'services',
  'interfaces',
  'routes',
  'firewall',
  'dns',
  'sockets',
  'mounts',
  'block',
  'df',
  'cgroups',
  'cpu',
  'memory',
  'libraries',
  'environ',
  'files',
  'hashes',
  'privkeys',
  'sysctl',
  'modules',
  'users',
  'groups',
  'shadow',
  'sudoers',
  'sshkeys',
  'processes',
  'sample-end',
  'loadavg',
  'du',
  'runtimes',
  'ionice',
];

describe('parseSections', () => {
  it('splits the recorded Debian output into every section the script prints, with statuses', () => {
    const sections = parseSections(fixture('debian-12'));
    expect([...sections.keys()].sort()).toEqual([...SECTIONS].sort());
    expect(sections.get('os')?.status).toBe(0);
    expect(sections.get('firewall')).toMatchObject({
      status: 127,
      missing: 'neither nft nor iptables-save found',
    });
    expect(sections.get('modules')?.status).toBe(127);
    expect(sections.get('packages')?.parts.map((p) => p.header)).toEqual(['dpkg apt']);
  });

  it('reports how long each section and the whole run took, by the host clock', () => {
    const sections = parseSections(fixture('debian-12'));
    expect(sections.seconds).toBeGreaterThanOrEqual(1);
    expect(sections.seconds).toBeLessThan(3);
    expect(sections.get('files')?.seconds).toBeGreaterThanOrEqual(0);
  });

  it('keeps text exactly, removing only the newline each marker is written after', () => {
    const out = [
      '@@persona:begin n1 1',
      '',
      '@@persona:n1:section a',
      'line 1',
      '',
      '@@persona:n1:part p1',
      'no trailing newline',
      '@@persona:n1:end a 0 1.00 1.50',
      '',
      '@@persona:n1:done 1.00 2.00',
      '',
    ].join('\n');
    const a = parseSections(out).get('a');
    expect(a?.parts).toEqual([
      { header: '', text: 'line 1\n' },
      { header: 'p1', text: 'no trailing newline' },
    ]);
    expect(a?.seconds).toBe(0.5);
  });

  it('treats a marker with another nonce, written by host content, as plain text', () => {
    const out = [
      '@@persona:begin real 1',
      '',
      '@@persona:real:section environ',
      '= EVIL=x',
      '@@persona:forged:section users',
      '@@persona:forged:end users 0 1 1',
      '',
      '@@persona:real:end environ 0 1.00 1.00',
      '',
      '@@persona:real:done 1.00 1.00',
      '',
    ].join('\n');
    const sections = parseSections(out);
    expect([...sections.keys()]).toEqual(['environ']);
    expect(sections.get('environ')?.text).toContain('@@persona:forged:section users');
  });

  it('refuses a host that is not Linux with an error naming its kernel', () => {
    const attempt = () => parseSections(fixture('freebsd'));
    expect(attempt).toThrow(UnsupportedHostError);
    expect(attempt).toThrow(/FreeBSD, not Linux/);
    try {
      attempt();
    } catch (e) {
      expect(e).toMatchObject({ code: 'INVALID_INPUT', found: 'FreeBSD' });
    }
  });

  it('refuses output cut short before the script finished', () => {
    const full = fixture('debian-12');
    expect(() => parseSections(full.slice(0, full.length / 2))).toThrow(IncompleteCaptureError);
    expect(() => parseSections(full.slice(0, full.length / 2))).toThrow(/cut short/);
  });

  it('refuses output that is not the script’s, and a format it does not read', () => {
    expect(() => parseSections('sh: 1: syntax error\n')).toThrow(/not from the Persona capture script/);
    expect(() => parseSections('@@persona:begin n 2\n\n@@persona:n:done 1 1\n')).toThrow(/format 2/);
  });

  it('turns a fatal marker into an error that says why the script stopped', () => {
    const out = '@@persona:begin n 1\n\n@@persona:n:fatal cannot create a temporary directory\n';
    expect(() => parseSections(out)).toThrow(/cannot create a temporary directory/);
  });
});
