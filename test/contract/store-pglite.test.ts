/** Runs the Store contract against embedded PGlite, in memory and in a non-default schema. */
import { createPgliteStore } from "../../src/store/pglite.js";
import { describeStoreContract } from "./store.contract.js";

describeStoreContract("pglite", {
  async open() {
    return { store: createPgliteStore({ dataDir: "memory://", schema: "verdict_contract" }), dispose: async () => {} };
  },
});
