// Lint exists mainly to keep workflow code deterministic: no Node built-ins and no I/O there.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const ioModules = ['pg', 'ioredis', 'redis', 'undici', 'axios', 'node-fetch', 'commander'];
const banned = [...builtinModules, ...builtinModules.map((m) => `node:${m}`), ...ioModules];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.cordon/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: banned.map((name) => ({ name, message: 'Workflow code must be deterministic: do I/O in activities.' })),
          patterns: [
            { group: ['../activities/*', '../workers/*', '../client/*'], message: 'workflows/ is the pure core: it imports nothing else of ours.' },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'Use sleep() from @temporalio/workflow.' },
        { name: 'setInterval', message: 'Use sleep() from @temporalio/workflow.' },
        { name: 'fetch', message: 'No I/O in workflows: use an activity.' },
        { name: 'process', message: 'No process access in workflows.' },
      ],
    },
  },
);
