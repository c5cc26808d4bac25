// What a clone's plan does with Changes no executor of the target applies yet: they are listed as
// unresolved before anything changes, and the rest of the plan still starts from the baseline.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { debianExecutors } from '../../../core/orchestrator/executors/index.js';
import { buildPlan, Plan, withoutUnappliable } from '../../../core/plan/plan.js';
import { parseProfile } from '../../../core/profile/io.js';
import type { PackageStore } from '../../../core/resolver/store.js';
import { bareTarget } from '../plan/fixtures.js';

const executors = debianExecutors({ store: {} as PackageStore });
const source = parseProfile(readFileSync(new URL('../../../examples/web.yaml', import.meta.url)));
const now = () => new Date('2026-12-01T12:00:00Z');

describe('a clone plan', () => {
  it('moves every Change no executor applies to unresolved, naming it, and keeps the rest', () => {
    const plan = buildPlan({ source: { profile: source }, baseline: bareTarget(), now });
    const unappliable = plan.delta.changes.filter((c) => !executors.has(c.kind));
    expect(unappliable.length).toBeGreaterThan(0);
    const kept = withoutUnappliable(plan, executors);
    expect(kept.delta.changes.every((c) => executors.has(c.kind))).toBe(true);
    expect(kept.delta.changes).toHaveLength(plan.delta.changes.length - unappliable.length);
    for (const c of unappliable)
      expect(kept.unresolved).toContainEqual(
        expect.objectContaining({
          kind: 'other',
          reason: `no host executor applies ${c.kind} changes yet: not reproduced`,
        }),
      );
    // Still a plan: its parts agree and its Delta starts from the baseline.
    expect(Plan.safeParse(kept).success).toBe(true);
  });

  it('leaves a plan whose every Change has an executor as it is', () => {
    const plan = buildPlan({ source: { profile: bareTarget() }, baseline: bareTarget(), now });
    expect(withoutUnappliable(plan, executors)).toBe(plan);
  });
});
