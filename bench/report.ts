// A benchmark's report: markdown lines printed as they come and kept for reports/, and
// progress lines with the elapsed time on standard error.
export function createReport() {
  const started = performance.now();
  const lines: string[] = [];
  const say = (line = ''): void => {
    lines.push(line);
    process.stdout.write(`${line}\n`);
  };
  const progress = (what: string): void => {
    process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${what}\n`);
  };
  /** `numeric` names the columns to right-align. */
  const table = (
    head: readonly string[],
    rows: readonly (readonly string[])[],
    numeric: readonly number[] = [],
  ): void => {
    say(`| ${head.join(' | ')} |`);
    say(`| ${head.map((_, i) => (numeric.includes(i) ? '---:' : '---')).join(' | ')} |`);
    for (const row of rows) say(`| ${row.join(' | ')} |`);
    say();
  };
  return { started, lines, say, progress, table };
}
