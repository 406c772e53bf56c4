/** Runs the IdentityStore contract against embedded PGlite, in memory. */
import { createPgliteStore } from "../../src/store/pglite.js";
import { describeIdentityStoreContract } from "./identity-store.contract.js";

describeIdentityStoreContract("pglite", {
  async open() {
    return { store: createPgliteStore({ dataDir: "memory://", schema: "verdict_identity_contract" }), dispose: async () => {} };
  },
});
