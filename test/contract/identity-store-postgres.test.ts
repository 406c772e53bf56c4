/** Runs the IdentityStore contract against the machine's Postgres, in a fresh schema. */
import { createPostgresStore } from "../../src/store/postgres.js";
import { TEST_DATABASE_URL as url, dropSchema, freshSchema } from "../helpers/verdict.js";
import { describeIdentityStoreContract } from "./identity-store.contract.js";

describeIdentityStoreContract("postgres", {
  async open() {
    const schema = freshSchema();
    return { store: createPostgresStore({ connectionString: url, schema }), dispose: () => dropSchema(schema) };
  },
});
