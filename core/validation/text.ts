/** A value cut to `max` characters for a report, saying how long it was. */
export function truncate(value: string, max: number, keep: 'head' | 'tail' = 'head'): string {
  const chars = [...value];
  if (chars.length <= max) return value;
  const kept = keep === 'head' ? chars.slice(0, max).join('') : chars.slice(-max).join('');
  const note = `(${chars.length} characters)`;
  return keep === 'head' ? `${kept}… ${note}` : `${note} …${kept}`;
}

/** Whether a request path can go on the wire as it is: a space or control character would make another request line. */
export function isRequestPath(path: string): boolean {
  if (!path.startsWith('/')) return false;
  for (const ch of path) {
    const code = ch.codePointAt(0) ?? 0;
    if (code <= 0x20 || code === 0x7f) return false;
  }
  return true;
}
