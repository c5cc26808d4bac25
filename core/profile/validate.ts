// Checking a plain value against the Profile schema, without the document parser: a capture
// builds its Profile as a value and never reads YAML, so what it loads leaves yaml out.
import { InvalidInputError } from '../errors.js';
import { canonicalSpec } from './collections.js';
import type { Located, ParseOptions } from './document-text.js';
import { issuesFromZod } from './issues.js';
import { Profile } from './schema.js';

/** Checks a plain value against the Profile schema and returns it in canonical form. */
export function validateProfile(
  value: unknown,
  options: ParseOptions & { locate?: Located['locate'] } = {},
): Profile {
  const result = Profile.safeParse(value);
  if (!result.success) {
    throw new InvalidInputError(
      `${options.source ?? 'profile'} is not a valid profile`,
      issuesFromZod(result.error, options.locate),
      options.source === undefined ? {} : { source: options.source },
    );
  }
  return canonicalProfile(result.data);
}

/** The form profiles are stored in: defaults filled, unordered collections sorted by key. */
export function canonicalProfile(profile: Profile): Profile {
  return { ...profile, spec: canonicalSpec(profile.spec) };
}
