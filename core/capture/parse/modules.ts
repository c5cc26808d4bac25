// Kernel modules in load order, with their parameters.
//
// Load order: the kernel adds each module at the head of its list, so /proc/modules names the
// most recently loaded module first; reversing it gives the order they were loaded in. That
// order also respects dependencies (a module's dependencies are loaded, and listed, before it),
// so loading a clone's modules in this order never needs modprobe to reorder them. Modules
// loaded, unloaded and loaded again appear at their latest position.
import type { z } from 'zod';
import { KernelModule } from '../../profile/schema.js';
import { lines, partWith } from '../sections.js';
import type { ParseContext } from './context.js';

type ModuleInput = z.input<typeof KernelModule>;

export function parseModules(ctx: ParseContext): ModuleInput[] {
  const section = ctx.section('modules');
  if (section?.status !== 0) return [];
  const listed = section.parts.find((p) => p.header === '')?.text ?? '';

  const parameters = new Map<string, Record<string, string>>();
  for (const line of lines(partWith(section, 'parameters')?.text ?? '')) {
    const m = /^\/sys\/module\/([^/]+)\/parameters\/([^:]+):(.*)$/.exec(line);
    if (!m?.[1] || !m[2] || m[3] === undefined) continue;
    const params = parameters.get(m[1]) ?? {};
    params[m[2]] = m[3];
    parameters.set(m[1], params);
  }

  const found: ModuleInput[] = [];
  for (const line of lines(listed)) {
    const [name, , , , state] = line.split(' ');
    // Modules being unloaded are on their way out; the ones loading will be listed next time.
    if (!name || (state !== undefined && state !== 'Live')) continue;
    found.push({ name, parameters: parameters.get(name) ?? {} });
  }
  found.reverse();
  return ctx.keep('modules', KernelModule, found, (m) => m.name, 'kernel module');
}
