/**
 * The SQL token key store: Verdict's own signing keys (shared by every replica) and users mapped
 * from external issuers.
 */
import type { BindingRecord, UserRecord } from "../core/model.js";
import type { SigningKeyRecord } from "../core/signing-key-record.js";
import { SIGNING_KEY_COLUMNS, type SigningKeyRow, toSigningKey } from "./sql-model.js";
import type { Change, SqlRunner } from "./sql-transactions.js";
import { insertBindings, insertUser, userConstraintMessages } from "./sql-policy-writer.js";
import { type Actor, type Committed, StoreError, type TokenKeyStore } from "./store.js";

/** Key of the transaction-scoped advisory lock serialising signing-key writes ("vkey" in ASCII). */
const SIGNING_KEY_LOCK = 0x766b6579;

/** Creates the token key store over `run`. */
export function createSqlTokenKeyStore(run: SqlRunner): TokenKeyStore {
  const { db } = run;
  return {
    // TokenKeyStore

    listSigningKeys(): Promise<SigningKeyRecord[]> {
      return run.unversioned(async () => {
        const { rows } = await db.query<SigningKeyRow>(`SELECT ${SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid`);
        return rows.map(toSigningKey);
      });
    },

    replaceSigningKeys(records: readonly SigningKeyRecord[], expectedActiveKid: string | null, actor: Actor): Promise<Committed> {
      return run.mutate(actor, async (tx) => {
        await tx.query("SELECT pg_advisory_xact_lock($1)", [SIGNING_KEY_LOCK]);
        const old = await tx.query<{ kid: string; retired_at: string | number | null }>("SELECT kid, retired_at FROM signing_keys");
        const active = old.rows.find((row) => row.retired_at === null)?.kid ?? null;
        if (active !== expectedActiveKid) throw new StoreError("conflict", "signing keys changed concurrently; reload them and try again");
        await tx.query("DELETE FROM signing_keys");
        for (const r of records) {
          await tx.query(`INSERT INTO signing_keys (${SIGNING_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
            r.kid,
            r.alg,
            JSON.stringify(r.publicJwk),
            r.privateKey,
            r.encrypted,
            r.createdAtMs,
            r.retiredAtMs,
          ]);
        }
        const kids = new Set([...old.rows.map((row) => row.kid), ...records.map((r) => r.kid)]);
        return { value: undefined, changes: [...kids].map((kid) => ({ kind: "signing_key" as const, id: kid })) };
      });
    },

    createExternalUser(user: UserRecord, bindings: readonly BindingRecord[], actor: Actor): Promise<Committed<UserRecord>> {
      return run.mutate(
        actor,
        async (tx) => {
          const created = await insertUser(tx, { ...user, root: false }, "");
          await insertBindings(tx, bindings);
          const changes: Change[] = [{ kind: "user", id: user.id }];
          if (bindings.length) changes.push({ kind: "binding", id: user.id });
          return { value: created, changes };
        },
        userConstraintMessages(user),
        { role_bindings_role_fkey: `role not found (one of: ${bindings.map((b) => b.role).join(", ")})` },
      );
    },
  };
}
