// Apart from the document reader (io.ts) so that what reports a request's bad parameters does
// not bring the YAML parser into functions that never read a document.
import type { z } from 'zod';
import { formatPath, type Issue } from '../errors.js';
import type { Located } from './document-text.js';

/** zod issues as Persona issues, one per problem, unknown keys one per key. */
export function issuesFromZod(error: z.ZodError, locate?: Located['locate']): Issue[] {
  const out: Issue[] = [];
  for (const issue of error.issues) {
    const paths =
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((k) => [...issue.path, k])
        : [issue.path as PropertyKey[]];
    for (const path of paths) {
      const message =
        issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message.replace(/^Invalid input: /, '');
      out.push({ path: formatPath(path), message, ...locate?.(path) });
    }
  }
  return out;
}
