import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests spawn the built `persona` command: rebuilt first when its sources changed.
    globalSetup: ['test/cli/build-setup.ts'],
    // Integration tests start DynamoDB Local (a JVM) and bundle Lambda functions: slow to
    // start on a 2-core machine, so time-outs are generous and files run in few workers.
    testTimeout: 60_000,
    hookTimeout: 240_000,
    maxWorkers: 2,
    reporters: process.env.CI ? ['default', ['json', { outputFile: 'reports/vitest.json' }]] : ['default'],
  },
});
