// The capture's own processes in the process table: the script's `psown` filter, run by sh on
// a crafted table, then the control side's parse. A lane (or a subshell of one) forked after the
// script listed itself, and what it runs, must not be taken for the host's software, however
// short-lived: a grep caught while exiting has lost its command line and shows as `[grep]`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ParseContext } from '../../../core/capture/parse/context.js';
import { parseProcessTable } from '../../../core/capture/parse/processes.js';
import { CAPTURE_SCRIPT } from '../../../core/capture/script.js';
import { SecretCollector } from '../../../core/capture/secrets.js';
import { parseSections } from '../../../core/capture/sections.js';

const NONCE = 'processes-fixture';
const mark = (d: string) => `\n@@persona:${NONCE}:${d}\n`;
const SCRIPT_ARGS = `sh -c # Persona capture script, format 1. POSIX sh; see core/capture/script.ts.?set -u?...`;

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** The `ps` rows the script sends back, by its own `psown` filter over these files. */
function psown(self: readonly number[], rows: readonly string[]): string {
  const fn = /^ {2}psown\(\) \{.*\}$/m.exec(CAPTURE_SCRIPT)?.[0];
  if (!fn) throw new Error('psown not found in the capture script');
  dir = mkdtempSync(join(tmpdir(), 'persona-psown-'));
  writeFileSync(join(dir, 'pself'), self.map((p) => `/proc/${p}/environ\n`).join(''));
  writeFileSync(join(dir, 'ps'), rows.map((r) => `${r}\n`).join(''));
  const run = spawnSync('sh', ['-c', `${fn}\npsown`], {
    env: { PATH: '/usr/bin:/bin', T: dir },
    encoding: 'utf8',
  });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  return run.stdout;
}

function table(self: readonly number[], rows: readonly string[]) {
  const output = [
    `@@persona:begin ${NONCE} 1\n`,
    mark('section processes'),
    mark('part self'),
    self.map((p) => `/proc/${p}/environ\n`).join(''),
    mark('part ps procps'),
    psown(self, rows),
    mark('end processes 0 1.00 1.01').replace(/\n$/, ''),
    mark('done 1.00 1.01'),
  ].join('');
  const ctx = new ParseContext(parseSections(output), new SecretCollector('fixture-host'), 'fixture-host');
  return parseProcessTable(ctx);
}

describe("the capture's own processes", () => {
  const host = [
    '    1     0 root      0  0.0  9000 /sbin/init',
    '  310     1 www-data  0  0.1  4200 nginx: worker process',
    '  900   310 www-data  0  0.0  1200 grep -q ready /srv/www/status',
  ];

  it('leaves out a lane forked after the listing, and what it runs, alive or exiting', () => {
    const rows = [
      ...host,
      `  500     1 root      0  0.0  3000 ${SCRIPT_ARGS}`,
      `  501   500 root      0  0.0  2000 ${SCRIPT_ARGS}`,
      // Forked after the script listed itself: a subshell of lane 501, and its commands.
      `  502   501 root      0  0.0  1900 ${SCRIPT_ARGS}`,
      '  503   502 root      0  0.0     0 [grep]',
      '  504   502 root      0  0.0   800 sort -u',
      '  505   501 root      0  0.0   700 find /etc -xdev',
    ];
    const sent = psown([500, 501], rows);
    // The script's text is never sent back, not once a lane.
    expect(sent).not.toContain('Persona capture script');
    expect(sent).toContain('  502   501 root      0  0.0  1900 sh -c -');
    const names = table([500, 501], rows).processes.map((p) => [p.pid, p.args]);
    expect(names).toEqual([
      [1, '/sbin/init'],
      [310, 'nginx: worker process'],
      [900, 'grep -q ready /srv/www/status'],
    ]);
  });

  it('leaves out a process caught exiting, whose command line is gone, whoever its parent', () => {
    const rows = [
      ...host,
      '  700     1 root      0  0.0     0 [nproc]',
      '  701   310 www-data  0  0.0     0 [grep]',
    ];
    expect(table([500], rows).processes.map((p) => p.pid)).toEqual([1, 310, 900]);
  });

  it("keeps a host process whose command line looks like the script's when its parent is not the capture", () => {
    const forged = `  600     1 root      0  0.0  1000 ${SCRIPT_ARGS}`;
    const names = table([500], [...host, forged]).processes.map((p) => p.pid);
    expect(names).toEqual([1, 310, 900, 600]);
  });
});
