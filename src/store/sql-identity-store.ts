/**
 * The SQL implementation of IdentityStore, run through the SQL store's transaction runners so that
 * sessions opened and revoked here reach every replica through the change log like any other.
 */
import type { IdentitySessionInput, IdentityStore, LinkedIdentityRecord, PendingAuthorization } from "./identity-store.js";
import type { SqlSession } from "./sql-driver.js";
import { toNumber } from "./sql-model.js";
import { insertBindings, insertUser, userConstraintMessages } from "./sql-policy-writer.js";
import { insertSession, sessionConstraintMessages } from "./sql-sessions.js";
import type { Change, SqlRunner } from "./sql-transactions.js";
import { StoreError } from "./store.js";

interface LinkRow {
  provider: string;
  subject: string;
  user_id: string;
  email: string;
  created_at: string | number;
}

interface PendingRow {
  state_hash: string;
  provider: string;
  nonce: string;
  code_verifier: string;
  return_to: string;
  link_user_id: string;
  expires_at: string | number;
}

const LINK_COLUMNS = "provider, subject, user_id, email, created_at";
const PENDING_COLUMNS = "state_hash, provider, nonce, code_verifier, return_to, link_user_id, expires_at";

function toLink(row: LinkRow): LinkedIdentityRecord {
  return { provider: row.provider, subject: row.subject, userId: row.user_id, email: row.email, createdAtMs: toNumber(row.created_at) };
}

function toPending(row: PendingRow): PendingAuthorization {
  return {
    stateHash: row.state_hash,
    provider: row.provider,
    nonce: row.nonce,
    codeVerifier: row.code_verifier,
    returnTo: row.return_to,
    linkUserId: row.link_user_id,
    expiresAtMs: toNumber(row.expires_at),
  };
}

/** Creates the identity store over the SQL store's runners. */
export function createSqlIdentityStore(run: SqlRunner): IdentityStore {
  const { db, mutate } = run;
  const read = run.unversioned;

  async function revokeSessions(
    tx: SqlSession,
    where: string,
    params: readonly unknown[],
    nowMs: number,
  ): Promise<Change[]> {
    const { rows } = await tx.query<{ id: string }>(
      `UPDATE sessions SET revoked_at = $1, revoke_reason = $2
       WHERE revoked_at = 0 AND expires_at > $1 AND id IN (SELECT session_id FROM identity_sessions WHERE ${where})
       RETURNING id`,
      [Math.trunc(nowMs), ...params],
    );
    return rows.map((r) => ({ kind: "session" as const, id: r.id }));
  }

  return {
    savePendingAuthorization(p, nowMs, maxRows) {
      if (!Number.isInteger(maxRows) || maxRows < 1) throw new RangeError(`maxRows must be a positive integer, got ${maxRows}`);
      return read(() =>
        db.transaction(async (tx) => {
          await tx.query("DELETE FROM oauth_pending WHERE expires_at <= $1", [Math.trunc(nowMs)]);
          // Full: the ones expiring first (a short walk of the expiry index) make room for the new one.
          const { rows } = await tx.query<{ n: string | number }>("SELECT count(*) AS n FROM oauth_pending");
          const excess = toNumber(rows[0].n) - maxRows + 1;
          const dropped =
            excess > 0
              ? await tx.query(
                  "DELETE FROM oauth_pending WHERE state_hash IN (SELECT state_hash FROM oauth_pending ORDER BY expires_at LIMIT $1) RETURNING state_hash",
                  [excess],
                )
              : { rows: [] };
          await tx.query(`INSERT INTO oauth_pending (${PENDING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
            p.stateHash,
            p.provider,
            p.nonce,
            p.codeVerifier,
            p.returnTo,
            p.linkUserId,
            p.expiresAtMs,
          ]);
          return dropped.rows.length;
        }),
      );
    },

    takePendingAuthorization(stateHash, nowMs) {
      return read(async () => {
        const { rows } = await db.query<PendingRow>(`DELETE FROM oauth_pending WHERE state_hash = $1 RETURNING ${PENDING_COLUMNS}`, [stateHash]);
        const pending = rows.length ? toPending(rows[0]) : undefined;
        return pending && pending.expiresAtMs > nowMs ? pending : undefined;
      });
    },

    getLinkedIdentity(provider, subject) {
      return read(async () => {
        const { rows } = await db.query<LinkRow>(`SELECT ${LINK_COLUMNS} FROM linked_identities WHERE provider = $1 AND subject = $2`, [provider, subject]);
        return rows.length ? toLink(rows[0]) : undefined;
      });
    },

    listLinkedIdentities(userId) {
      return read(async () => {
        const { rows } = await db.query<LinkRow>(`SELECT ${LINK_COLUMNS} FROM linked_identities WHERE user_id = $1 ORDER BY provider, subject`, [userId]);
        return rows.map(toLink);
      });
    },

    openIdentitySession(input: IdentitySessionInput, actor) {
      const { session, refresh, link, newUser } = input;
      return mutate(
        actor,
        async (tx) => {
          const changes: Change[] = [];
          if (newUser) {
            const u = newUser.user;
            await insertUser(tx, u, "");
            await insertBindings(tx, newUser.bindings);
            changes.push({ kind: "user", id: u.id });
            if (newUser.bindings.length) changes.push({ kind: "binding", id: u.id });
          }
          if (link) {
            await tx.query(`INSERT INTO linked_identities (${LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5)`, [
              link.provider,
              link.subject,
              link.userId,
              link.email,
              link.createdAtMs,
            ]);
          }
          const opened = await insertSession(tx, session, refresh);
          await tx.query("INSERT INTO identity_sessions (session_id, provider, subject) VALUES ($1, $2, $3)", [session.id, input.provider, input.subject]);
          changes.push({ kind: "session", id: session.id });
          return { value: opened, changes };
        },
        {
          ...sessionConstraintMessages(session),
          ...(newUser ? userConstraintMessages(newUser.user) : {}),
          linked_identities_pkey: `this ${input.provider} identity is already linked to a user`,
        },
        { linked_identities_user_fkey: "the user to link no longer exists", role_bindings_role_fkey: "the provisioning role does not exist" },
      );
    },

    removeLinkedIdentity(userId, provider, subject, nowMs, actor) {
      return mutate(actor, async (tx) => {
        const { rows } = await tx.query("DELETE FROM linked_identities WHERE user_id = $1 AND provider = $2 AND subject = $3 RETURNING subject", [
          userId,
          provider,
          subject,
        ]);
        if (!rows.length) throw new StoreError("not_found", `user "${userId}" has no linked ${provider} identity with that subject`);
        const revoked = await revokeSessions(tx, "provider = $3 AND subject = $4", ["unlinked", provider, subject], nowMs);
        return { value: revoked.length, changes: revoked };
      });
    },

    async revokeSessionsOfRemovedProviders(providers, nowMs, actor) {
      const stale = await read(async () => {
        const { rows } = await db.query<{ n: string | number }>(
          `SELECT count(*) AS n FROM sessions s JOIN identity_sessions i ON i.session_id = s.id
           WHERE s.revoked_at = 0 AND s.expires_at > $1 AND NOT (i.provider = ANY($2::text[]))`,
          [Math.trunc(nowMs), [...providers]],
        );
        return Number(rows[0].n);
      });
      if (stale === 0) return undefined;
      return mutate(actor, async (tx) => {
        const revoked = await revokeSessions(tx, "NOT (provider = ANY($3::text[]))", ["provider_removed", [...providers]], nowMs);
        return { value: revoked.length, changes: revoked };
      });
    },
  };
}
