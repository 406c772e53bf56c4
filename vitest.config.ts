import { defineConfig } from "vitest/config";

export default defineConfig({
  // "verdict/client" resolves through package.json exports to the TypeScript sources (the
  // "verdict-source" condition) in tests, as tsconfig's customConditions does for the typecheck.
  ssr: { resolve: { conditions: ["verdict-source", "module", "node", "development|production"] } },
  test: {
    include: ["test/**/*.test.ts"],
    // One build of the tree into dist/ for the tests that spawn the real binaries.
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    fileParallelism: true,
    maxWorkers: 2,
  },
});
