/**
 * How the SQL store runs statements: every call translates driver errors, and every policy write
 * is one versioned transaction that appends its change-log entries. Each part of the store
 * (policy reader, writer, change feed, sessions, token keys) runs its SQL through one SqlRunner.
 */
import type { EntityKind } from "../core/change-log.js";
import type { SqlDriver, SqlSession } from "./sql-driver.js";
import { type ConstraintMessages, translateError } from "./sql-errors.js";
import { toNumber } from "./sql-model.js";
import { type Actor, type Committed, StoreError } from "./store.js";

/** One entity a mutation changed: becomes one change-log entry. */
export interface Change {
  readonly kind: EntityKind;
  readonly id: string;
}

/** What a mutation's body returns: its value and the entities it changed. */
export interface Mutation<T> {
  readonly value: T;
  readonly changes: readonly Change[];
}

/** Runs the store's SQL over one driver. */
export interface SqlRunner {
  /** The driver, for statements run through unversioned(). */
  readonly db: SqlDriver;
  /**
   * Runs `fn` (reads, and writes that are not policy: key use, settings, migrations, trimming)
   * without a change-log entry, translating driver errors.
   */
  unversioned<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Runs one writer transaction: the row changes, then the version bump (whose row lock orders
   * commits), then one change-log row per changed entity at that version. `unique` and `missing`
   * name the messages for constraint violations.
   */
  mutate<T>(
    actor: Actor,
    fn: (tx: SqlSession) => Promise<Mutation<T>>,
    unique?: ConstraintMessages,
    missing?: ConstraintMessages,
  ): Promise<Committed<T>>;
  /**
   * Runs `sql` (parameters: `id`, then `params`; it must return a row per match) as one mutation
   * with one `kind` entry for `id`; not_found, naming `noun` and `id`, when no row matched.
   */
  updateOne(
    actor: Actor,
    kind: EntityKind,
    noun: string,
    id: string,
    sql: string,
    params: readonly unknown[],
  ): Promise<Committed>;
}

function dedupe(changes: readonly Change[]): Change[] {
  const seen = new Map<string, Change>();
  for (const change of changes) seen.set(`${change.kind}\u0000${change.id}`, change);
  return [...seen.values()];
}

/** Creates the runner over a driver. */
export function createSqlRunner(db: SqlDriver): SqlRunner {
  async function unversioned<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw translateError(err, {}, {});
    }
  }

  async function mutate<T>(
    actor: Actor,
    fn: (tx: SqlSession) => Promise<Mutation<T>>,
    unique: ConstraintMessages = {},
    missing: ConstraintMessages = {},
  ): Promise<Committed<T>> {
    try {
      return await db.transaction(async (tx) => {
        const { value, changes } = await fn(tx);
        const bumped = await tx.query<{ version: string | number }>(
          "UPDATE policy_version SET version = version + 1 RETURNING version",
        );
        const version = toNumber(bumped.rows[0].version);
        const entries = dedupe(changes);
        await tx.query(
          `INSERT INTO change_log (version, kind, entity_id, actor_user_id, actor_key_id, at)
           SELECT $1::bigint, c.kind, c.entity_id, $4::text, $5::text, $6::bigint FROM unnest($2::text[], $3::text[]) AS c(kind, entity_id)`,
          [version, entries.map((c) => c.kind), entries.map((c) => c.id), actor.userId, actor.keyId ?? "", Date.now()],
        );
        return { version, value };
      });
    } catch (err) {
      throw translateError(err, unique, missing);
    }
  }

  function updateOne(
    actor: Actor,
    kind: EntityKind,
    noun: string,
    id: string,
    sql: string,
    params: readonly unknown[],
  ): Promise<Committed> {
    return mutate(actor, async (tx) => {
      const { rows } = await tx.query(sql, [id, ...params]);
      if (!rows.length) throw new StoreError("not_found", `${noun} "${id}" not found`);
      return { value: undefined, changes: [{ kind, id }] };
    });
  }

  return { db, unversioned, mutate, updateOne };
}
