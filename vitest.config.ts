import { defineConfig } from 'vitest/config';

/**
 * Tests import workspace packages from source, so unit tests need no build.
 * (Integration tests spawn the built CLIs: `pnpm build` first; scripts/test.sh does.)
 *
 * How: every export of every workspace package.json carries a `"source"`
 * condition pointing at its TypeScript (`"source": "./src/index.ts"` before
 * `types`/`default`), and vitest resolves with that condition first. Node and
 * tsc ignore the condition and take dist, so a new package (or a new subpath
 * export) needs no entry here — only its package.json.
 */
const conditions = ['source', 'node', 'development|production'];
const resolve = { conditions };
const ssr = { resolve: { conditions } };

export default defineConfig({
  resolve,
  ssr,
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'test/unit/**/*.test.ts'],
          testTimeout: 20_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          pool: 'forks',
          maxWorkers: 2,
          // After the unit tests: timing-sensitive process tests don't share the CPU with them.
          sequence: { groupOrder: 1 },
          globalSetup: ['test/global-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'chaos',
          include: ['test/chaos/**/*.test.ts'],
          // Faults, restarts and settling take seconds each; one file at a time, alone on the CPU.
          testTimeout: 120_000,
          hookTimeout: 90_000,
          pool: 'forks',
          maxWorkers: 1,
          sequence: { groupOrder: 2 },
          globalSetup: ['test/global-setup.ts'],
        },
      },
    ],
  },
});
