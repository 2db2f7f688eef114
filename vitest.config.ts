import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Process-level tests start real servers on fixed port ranges; files run in parallel
    // but each file owns its own port block (see test/support/ports.ts).
    pool: 'forks',
  },
});
