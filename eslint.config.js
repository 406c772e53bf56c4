import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["gen/**", "dist/**", "node_modules/**", "data/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": "off",
    },
  },
  {
    // The decision core is pure: no I/O, no wire types, no Node built-ins.
    files: ["src/core/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["node:*", "pg", "ioredis", "@grpc/*", "@connectrpc/*", "@electric-sql/*", "argon2", "jose", "prom-client", "**/gen/**", "../*"], message: "src/core is pure: it imports only other core modules." },
          ],
        },
      ],
    },
  },
);
