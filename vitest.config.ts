import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // expect.poll's default 1 s is shorter than one rollout poll plus an event batch on a busy machine.
    expect: { poll: { timeout: 10_000 } },
    // tfjs backends are process-global singletons: isolate files in forks, run two at a time (2 cores).
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
