/**
 * The SQL session store: login sessions and their refresh tokens (stored hashed), each write one
 * versioned "session" change.
 */
import { SESSION_COLUMNS, type SessionRow, toNumber, toSession } from "./sql-model.js";
import type { SqlSession } from "./sql-driver.js";
import type { ConstraintMessages } from "./sql-errors.js";
import type { Change, SqlRunner } from "./sql-transactions.js";
import {
  type Actor,
  type Committed,
  type RefreshOutcome,
  type RefreshTokenRecord,
  type SessionRecord,
  type SessionStore,
  StoreError,
} from "./store.js";

/** Inserts a session with its first refresh token (in the caller's transaction). */
export async function insertSession(tx: SqlSession, session: SessionRecord, refresh: RefreshTokenRecord): Promise<SessionRecord> {
  const { rows } = await tx.query<SessionRow>(
    `INSERT INTO sessions (${SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${SESSION_COLUMNS}`,
    [session.id, session.userId, session.tenant, session.createdAtMs, session.expiresAtMs, session.revokedAtMs, session.revokeReason],
  );
  await tx.query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)", [
    refresh.hash,
    session.id,
    refresh.issuedAtMs,
    refresh.expiresAtMs,
  ]);
  return toSession(rows[0]);
}

/** Messages for the constraints insertSession may violate. */
export function sessionConstraintMessages(session: SessionRecord): ConstraintMessages {
  return { sessions_pkey: `session "${session.id}" already exists`, refresh_tokens_pkey: "refresh token already exists" };
}

/**
 * Revokes, inside `tx`, every active session of `userId` except `keepSessionId` (with `reason`, now),
 * and returns one "session" change per session revoked, for the caller's versioned write: a
 * password change or a disable revokes sessions in the same version as the user row.
 */
export async function revokeUserSessions(tx: SqlSession, userId: string, reason: string, keepSessionId = ""): Promise<Change[]> {
  const now = Date.now();
  const { rows } = await tx.query<{ id: string }>(
    `UPDATE sessions SET revoked_at = $2, revoke_reason = $3
     WHERE user_id = $1 AND revoked_at = 0 AND expires_at > $2 AND id <> $4 RETURNING id`,
    [userId, now, reason, keepSessionId],
  );
  return rows.map((row) => ({ kind: "session", id: row.id }));
}

/** Creates the session store over `run`. */
export function createSqlSessionStore(run: SqlRunner): SessionStore {
  const { db } = run;
  return {
    // SessionStore

    createSession(session: SessionRecord, refresh: RefreshTokenRecord, actor: Actor): Promise<Committed<SessionRecord>> {
      return run.mutate(
        actor,
        async (tx) => ({ value: await insertSession(tx, session, refresh), changes: [{ kind: "session", id: session.id }] }),
        sessionConstraintMessages(session),
      );
    },

    refreshSession(hash: string, next: RefreshTokenRecord, nowMs: number, actor: Actor): Promise<Committed<RefreshOutcome>> {
      const invalid = () => new StoreError("not_found", "refresh token unknown, expired or revoked");
      return run.mutate<RefreshOutcome>(
        actor,
        async (tx) => {
          const token = await tx.query<{ session_id: string; used_at: string | number; expires_at: string | number }>(
            "SELECT session_id, used_at, expires_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
            [hash],
          );
          if (!token.rows.length) throw invalid();
          const { session_id: sessionId } = token.rows[0];
          const found = await tx.query<SessionRow>(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = $1 FOR UPDATE`, [sessionId]);
          const session = toSession(found.rows[0]);
          if (session.revokedAtMs !== 0 || session.expiresAtMs <= nowMs) throw invalid();
          if (toNumber(token.rows[0].used_at) !== 0) {
            const { rows } = await tx.query<SessionRow>(
              `UPDATE sessions SET revoked_at = $2, revoke_reason = 'refresh_reuse' WHERE id = $1 RETURNING ${SESSION_COLUMNS}`,
              [sessionId, nowMs],
            );
            return { value: { kind: "reused", session: toSession(rows[0]) }, changes: [{ kind: "session", id: sessionId }] };
          }
          if (toNumber(token.rows[0].expires_at) <= nowMs) throw invalid();
          await tx.query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1", [hash, nowMs]);
          await tx.query("INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)", [
            next.hash,
            sessionId,
            next.issuedAtMs,
            next.expiresAtMs,
          ]);
          const { rows } = await tx.query<SessionRow>(
            `UPDATE sessions SET expires_at = GREATEST(expires_at, $2) WHERE id = $1 RETURNING ${SESSION_COLUMNS}`,
            [sessionId, next.expiresAtMs],
          );
          return { value: { kind: "rotated", session: toSession(rows[0]) }, changes: [{ kind: "session", id: sessionId }] };
        },
        { refresh_tokens_pkey: "refresh token already exists" },
      );
    },

    revokeSession(id: string, revokedAtMs: number, reason: string, actor: Actor): Promise<Committed<SessionRecord>> {
      return run.mutate(actor, async (tx) => {
        const { rows } = await tx.query<SessionRow>(
          `UPDATE sessions SET revoked_at = CASE WHEN revoked_at = 0 THEN $2 ELSE revoked_at END,
             revoke_reason = CASE WHEN revoked_at = 0 THEN $3 ELSE revoke_reason END
           WHERE id = $1 RETURNING ${SESSION_COLUMNS}`,
          [id, revokedAtMs, reason],
        );
        if (!rows.length) throw new StoreError("not_found", `session "${id}" not found`);
        return { value: toSession(rows[0]), changes: [{ kind: "session", id }] };
      });
    },

    findSessionByRefreshHash(hash: string): Promise<SessionRecord | undefined> {
      return run.unversioned(async () => {
        const { rows } = await db.query<SessionRow>(
          `SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)`,
          [hash],
        );
        return rows.length ? toSession(rows[0]) : undefined;
      });
    },

    getSessions(ids: readonly string[]): Promise<SessionRecord[]> {
      if (ids.length === 0) return Promise.resolve([]);
      return run.unversioned(async () => {
        const { rows } = await db.query<SessionRow>(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ANY($1::text[]) ORDER BY id`, [[...ids]]);
        return rows.map(toSession);
      });
    },

    listRevokedSessions(sinceMs: number): Promise<SessionRecord[]> {
      return run.unversioned(async () => {
        const { rows } = await db.query<SessionRow>(
          `SELECT ${SESSION_COLUMNS} FROM sessions WHERE revoked_at <> 0 AND revoked_at >= $1 ORDER BY id`,
          [Math.trunc(sinceMs)],
        );
        return rows.map(toSession);
      });
    },
  };
}
