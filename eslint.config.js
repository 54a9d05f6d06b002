import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The head and the worker are long-lived processes: a promise nobody awaits or catches there is
 * a failure nobody handles. These two rules need type information, so they run only on the
 * head's and the worker's own (non-test) sources, where the cost of type-aware linting pays.
 */
const longLivedSources = ['packages/head/src/**/*.ts', 'packages/worker/src/**/*.ts'];
const longLivedTests = ['**/*.test.ts', '**/*.test-suite.ts', '**/test-support.ts', '**/*.test-support.ts'];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'packages/proto/src/gen/**', '**/*.tsbuildinfo'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: longLivedSources,
    ignores: longLivedTests,
    languageOptions: {
      parserOptions: {
        project: ['packages/head/tsconfig.json', 'packages/worker/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false }],
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
);
