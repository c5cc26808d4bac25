// Kept apart from the capture script, whose text is tens of kilobytes: host records check
// process names with this, and every API function reads host records.

/** Characters in a process name; the script matches its first 15 bytes, all the kernel keeps in `comm`. */
export const PROCESS_NAME_MAX = 64;

/**
 * What is wrong with `name` as a process name sent to the script, or undefined. The script reads
 * its lists one item a line and never lets the shell split or expand an item, so only control
 * characters (a newline would make two names) and empty or very long names are refused.
 */
export function processNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.length > PROCESS_NAME_MAX) return `is longer than ${PROCESS_NAME_MAX} characters`;
  if (/[\p{Cc}\p{Cs}]/u.test(name)) return 'contains a control character';
  return undefined;
}
