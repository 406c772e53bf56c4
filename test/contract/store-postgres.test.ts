/**
 * Runs the Store contract against a real Postgres (VERDICT_TEST_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test), each database being a fresh schema dropped afterwards.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/store/index.js";
import { createPostgresStore } from "../../src/store/postgres.js";
import { StoreError } from "../../src/store/store.js";
import { describeStoreContract } from "./store.contract.js";

const url = process.env.VERDICT_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

function freshSchema(): string {
  return `verdict_test_${randomBytes(6).toString("hex")}`;
}

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

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

  it("reports an unreachable server as unavailable when opened", async () => {
    const err = await openStore({ databaseUrl: "postgres://postgres@127.0.0.1:1/test", dataDir: "unused" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe("unavailable");
  });
});
