// Vitest global setup: tests run the `persona` command as users do, from its build
// (cli/dist); the build is made again when a source that went into it changed.
import { buildCli, cliBuildStale } from '../../scripts/build-cli.js';

export default async function setup(): Promise<void> {
  if (cliBuildStale()) await buildCli();
}
