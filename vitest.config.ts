import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import workspace packages from source, so unit tests need no build.
// (Integration tests spawn the built CLIs: `pnpm build` first; scripts/test.sh does.)
const pkgs = ['proto', 'contracts', 'common', 'dataplane', 'head', 'worker', 'sdk', 'testing', 'cli'];
const alias = Object.fromEntries(
  pkgs.map((p) => [`@muster/${p}`, fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url))]),
);

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'test/unit/**/*.test.ts'],
          testTimeout: 20_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        resolve: { alias },
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
        resolve: { alias },
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
