/**
 * The SQL change feed: the current version, the change log read by version, and trimming it.
 */
import type { ChangeEntry } from "../core/change-log.js";
import { type ChangeRow, UPSERT_SETTING, toChange, toNumber } from "./sql-model.js";
import type { SqlRunner } from "./sql-transactions.js";
import type { ChangeFeed } from "./store.js";

/** Settings row recording where the change log was trimmed (first version still complete). */
const TRIMMED_BEFORE_SETTING = "verdict.change_log_trimmed_before";

/** The change feed with the operations method that bounds the log. */
export interface SqlChangeFeed extends ChangeFeed {
  /**
   * Deletes change-log entries with version < `beforeVersion` (clamped to the next version).
   * Afterwards changesSince(after) returns undefined for every `after` < beforeVersion - 1.
   */
  trimChangeLog(beforeVersion: number): Promise<void>;
}

/** Creates the change feed over `run`. */
export function createSqlChangeFeed(run: SqlRunner): SqlChangeFeed {
  const { db } = run;
  return {
    currentVersion(): Promise<number> {
      return run.unversioned(async () => {
        const { rows } = await db.query<{ version: string | number }>("SELECT version FROM policy_version");
        return toNumber(rows[0].version);
      });
    },

    /**
     * As ChangeFeed promises, except that a version's entries are never split across pages (a
     * caller resuming after the last version it saw would otherwise miss the rest): a page ends
     * before an incomplete last version, and a single version with more than `limit` entries is
     * returned whole.
     */
    async changesSince(after: number, limit: number): Promise<ChangeEntry[] | undefined> {
      if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
      return run.unversioned(async () => {
        // One statement, so the trim mark and the entries come from one snapshot.
        const { rows } = await db.query<Partial<ChangeRow> & { trimmed_before: string }>(
          `SELECT t.trimmed_before, c.version, c.kind, c.entity_id
           FROM (SELECT COALESCE((SELECT value FROM settings WHERE name = $3), '0') AS trimmed_before) t
           LEFT JOIN LATERAL (
             SELECT version, kind, entity_id FROM change_log WHERE version > $1
             ORDER BY version, kind, entity_id LIMIT $2
           ) c ON true`,
          [after, limit + 1, TRIMMED_BEFORE_SETTING],
        );
        if (after < Number(rows[0].trimmed_before) - 1) return undefined;
        const entries = rows.filter((row) => row.version != null).map((row) => toChange(row as ChangeRow));
        if (entries.length <= limit) return entries;
        const cut = entries[limit].version;
        const whole = entries.slice(0, limit).filter((entry) => entry.version < cut);
        if (whole.length > 0) return whole;
        const single = await db.query<ChangeRow>(
          "SELECT version, kind, entity_id FROM change_log WHERE version = $1 ORDER BY kind, entity_id",
          [cut],
        );
        return single.rows.map(toChange);
      });
    },

    async trimChangeLog(beforeVersion: number): Promise<void> {
      await run.unversioned(() =>
        db.transaction(async (tx) => {
          const { rows } = await tx.query<{ before: string | number }>(
            `SELECT GREATEST(LEAST($1::bigint, (SELECT version FROM policy_version) + 1),
                             COALESCE((SELECT value::bigint FROM settings WHERE name = $2), 0)) AS before`,
            [beforeVersion, TRIMMED_BEFORE_SETTING],
          );
          const before = toNumber(rows[0].before);
          await tx.query("DELETE FROM change_log WHERE version < $1", [before]);
          await tx.query(UPSERT_SETTING, [TRIMMED_BEFORE_SETTING, String(before)]);
        }),
      );
    },
  };
}
