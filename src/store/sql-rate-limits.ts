/**
 * The SQL rate-limit store: limits set for API keys, roles and tenants (table rate_limits), each
 * write one versioned transaction with a "rate_limit" change-log entry named "scope:subject".
 */
import type { ConfigurableScope, ConfiguredLimit } from "../core/rate-limit.js";
import { toNumber } from "./sql-model.js";
import type { SqlRunner } from "./sql-transactions.js";
import { type Actor, type Committed, type RateLimitStore, StoreError } from "./store.js";

interface RateLimitRow {
  scope: ConfigurableScope;
  subject: string;
  per_minute: number | string;
  per_hour: number | string;
  burst: number | string;
  shadow: boolean;
}

const COLUMNS = "scope, subject, per_minute, per_hour, burst, shadow";

function toLimit(row: RateLimitRow): ConfiguredLimit {
  return {
    scope: row.scope,
    id: row.subject,
    spec: { perMinute: toNumber(row.per_minute), perHour: toNumber(row.per_hour), burst: toNumber(row.burst), shadow: row.shadow },
  };
}

/** The change-log id of a scope's limit. */
function rateLimitChangeId(scope: ConfigurableScope, id: string): string {
  return `${scope}:${id}`;
}

/** Creates the rate-limit store over `run`. */
export function createSqlRateLimitStore(run: SqlRunner): RateLimitStore {
  const { db } = run;
  return {
    async listRateLimits(): Promise<ConfiguredLimit[]> {
      const { rows } = await run.unversioned(() => db.query<RateLimitRow>(`SELECT ${COLUMNS} FROM rate_limits ORDER BY scope, subject`));
      return rows.map(toLimit);
    },
    async getRateLimit(scope: ConfigurableScope, id: string): Promise<ConfiguredLimit | undefined> {
      const { rows } = await run.unversioned(() => db.query<RateLimitRow>(`SELECT ${COLUMNS} FROM rate_limits WHERE scope = $1 AND subject = $2`, [scope, id]));
      return rows.length === 0 ? undefined : toLimit(rows[0]);
    },
    putRateLimit(limit: ConfiguredLimit, actor: Actor): Promise<Committed> {
      return run.mutate(actor, async (tx) => {
        const { perMinute, perHour, burst, shadow } = limit.spec;
        await tx.query(
          `INSERT INTO rate_limits (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (scope, subject) DO UPDATE SET per_minute = $3, per_hour = $4, burst = $5, shadow = $6`,
          [limit.scope, limit.id, perMinute, perHour, burst, shadow],
        );
        return { value: undefined, changes: [{ kind: "rate_limit", id: rateLimitChangeId(limit.scope, limit.id) }] };
      });
    },
    deleteRateLimit(scope: ConfigurableScope, id: string, actor: Actor): Promise<Committed> {
      return run.mutate(actor, async (tx) => {
        const { rows } = await tx.query("DELETE FROM rate_limits WHERE scope = $1 AND subject = $2 RETURNING subject", [scope, id]);
        if (rows.length === 0) throw new StoreError("not_found", `no rate limit is set for ${scope} ${JSON.stringify(id)}`);
        return { value: undefined, changes: [{ kind: "rate_limit", id: rateLimitChangeId(scope, id) }] };
      });
    },
  };
}
