/**
 * Runs the Store contract against a real Postgres (TEST_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test), each database being a fresh schema dropped afterwards.
 */
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/store/index.js";
import { createPostgresStore } from "../../src/store/postgres.js";
import { StoreError } from "../../src/store/store.js";
import { TEST_DATABASE_URL as url, dropSchema, freshSchema } from "../helpers/verdict.js";
import { describeStoreContract } from "./store.contract.js";

describeStoreContract("postgres", {
  async open() {
    const schema = freshSchema();
    return { store: createPostgresStore({ connectionString: url, schema }), dispose: () => dropSchema(schema) };
  },
  async openReplicas() {
    const schema = freshSchema();
    return {
      stores: [
        createPostgresStore({ connectionString: url, schema }),
        createPostgresStore({ connectionString: url, schema }),
      ],
      dispose: () => dropSchema(schema),
    };
  },
});

describe("Postgres driver", () => {
  it("is chosen by openStore when a database URL is set", async () => {
    const store = await openStore({ databaseUrl: url, dataDir: "unused", schema: freshSchema() });
    try {
      expect(store.driver).toBe("postgres");
    } finally {
      await store.close();
    }
  });

  it("reports an unreachable server as unavailable on first use", async () => {
    const store = await openStore({ databaseUrl: "postgres://postgres@127.0.0.1:1/test", dataDir: "unused" });
    const err = await store.ping().then(
      () => undefined,
      (e: unknown) => e,
    );
    await store.close();
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe("unavailable");
  });
});
