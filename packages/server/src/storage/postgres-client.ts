import { ParleyError } from "@parley/protocol";
import pg from "pg";
import { type SqlClient, type SqlValue, UniqueViolation } from "./sql-client.js";

/** PostgreSQL type ids whose text form is read differently from pg's defaults. */
const INT8 = 20;
const TIMESTAMPTZ = 1184;

const parseTimestamp = pg.types.getTypeParser(TIMESTAMPTZ, "text") as (text: string) => Date;

/**
 * Rows as SQLite gives them: bigint (COUNT, identity columns) as a JavaScript number (exact to
 * 2^53), timestamptz as an ISO 8601 string in `toISOString()` form (UTC, milliseconds), so a time
 * written is read back unchanged.
 */
export const POSTGRES_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (oid === INT8) return (text: string) => Number(text);
    if (oid === TIMESTAMPTZ) return (text: string) => parseTimestamp(text).toISOString();
    return pg.types.getTypeParser(oid, format ?? "text");
  }) as pg.CustomTypesConfig["getTypeParser"],
};

/** Node socket errors of a database that is down, restarting or unreachable. */
const UNREACHABLE_ERRNOS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);

/**
 * SQLSTATEs of a server going away or not taking connections: class 08 (connection exception),
 * admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections.
 */
const UNREACHABLE_STATES = new Set(["57P01", "57P02", "57P03", "53300"]);

/** Transaction conflicts that another try resolves (serialization failure, deadlock). */
const RETRY_STATES = new Set(["40001", "40P01"]);
const TRANSACTION_TRIES = 3;

/** True when the error says the database could not be reached, rather than refused a statement. */
export function isUnreachable(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === "string" && (UNREACHABLE_ERRNOS.has(code) || UNREACHABLE_STATES.has(code))) return true;
  if (typeof code === "string" && code.startsWith("08")) return true;
  return (
    typeof message === "string" &&
    /Connection terminated|connection error|timeout exceeded when trying to connect|Client was closed|not queryable/i.test(
      message,
    )
  );
}

/**
 * pg's errors in Parley's terms: a unique violation as UniqueViolation (the stores turn it into
 * USERNAME_TAKEN and the like), an unreachable database as STORAGE_UNAVAILABLE (a request fails
 * with that code while PostgreSQL is down, and works again by itself once it is back).
 */
export function translatePgError(error: unknown): unknown {
  if (error instanceof ParleyError || error instanceof UniqueViolation) return error;
  const code = (error as { code?: unknown }).code;
  if (code === "23505") return new UniqueViolation((error as Error).message, { cause: error });
  if (isUnreachable(error)) {
    return new ParleyError("STORAGE_UNAVAILABLE", undefined, { cause: error });
  }
  return error;
}

/** The statement with `?` placeholders as `$1, $2, ...` (a `?` inside a quoted literal stays). */
export function numberPlaceholders(sql: string): string {
  let out = "";
  let n = 0;
  let quoted = false;
  for (const char of sql) {
    if (char === "'") quoted = !quoted;
    out += char === "?" && !quoted ? `$${++n}` : char;
  }
  return out;
}

/** Statement texts translated once each (the stores' statements are few and fixed). */
const translated = new Map<string, string>();
const TRANSLATED_MAX = 2000;

function pgText(sql: string): string {
  let text = translated.get(sql);
  if (text === undefined) {
    if (translated.size >= TRANSLATED_MAX) translated.clear();
    text = numberPlaceholders(sql);
    translated.set(sql, text);
  }
  return text;
}

/** Anything pg can run a statement on: the pool, or one checked-out connection. */
type Queryable = Pick<pg.Pool | pg.PoolClient, "query">;

async function query<T>(
  on: Queryable,
  sql: string,
  params: readonly SqlValue[],
): Promise<pg.QueryResult<T & pg.QueryResultRow>> {
  try {
    return await on.query<T & pg.QueryResultRow>(pgText(sql), params as SqlValue[]);
  } catch (error) {
    throw translatePgError(error);
  }
}

/**
 * SqlClient over a pg connection pool. A statement outside a transaction runs on any pooled
 * connection; a transaction holds one connection from BEGIN to COMMIT (READ COMMITTED, as
 * PostgreSQL's default: each statement sees what was committed before it, and unique indexes and
 * row locks decide between concurrent writers, on this process or another). A transaction that
 * PostgreSQL aborts for a deadlock or a serialization conflict is run again, up to three tries.
 */
export class PostgresClient implements SqlClient {
  readonly dialect = "postgres" as const;
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return (await query<T>(this.#pool, sql, params)).rows;
  }

  async get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return (await query<T>(this.#pool, sql, params)).rows[0];
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return (await query(this.#pool, sql, params)).rowCount ?? 0;
  }

  async transaction<T>(body: (tx: SqlClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let connection: pg.PoolClient;
      try {
        connection = await this.#pool.connect();
      } catch (error) {
        throw translatePgError(error);
      }
      let broken: unknown;
      // Checked out, the connection has no listener of pg's own: a connection lost between two
      // statements would be an uncaught 'error'. It is noted; the next statement fails with it.
      const lost = (error: Error) => {
        broken ??= error;
      };
      connection.on("error", lost);
      try {
        await query(connection, "BEGIN", []);
        const result = await body(new PostgresTransaction(connection, 0));
        await query(connection, "COMMIT", []);
        return result;
      } catch (error) {
        const cause = (error as { cause?: unknown }).cause ?? error;
        if (isUnreachable(cause)) broken ??= cause;
        else await connection.query("ROLLBACK").catch((rollbackError: unknown) => (broken = rollbackError));
        const state = (error as { code?: unknown }).code;
        if (!broken && typeof state === "string" && RETRY_STATES.has(state) && attempt < TRANSACTION_TRIES) continue;
        throw error;
      } finally {
        connection.off("error", lost);
        // A connection that failed is destroyed rather than handed to the next request.
        connection.release(broken instanceof Error ? broken : broken ? new Error(String(broken)) : undefined);
      }
    }
  }
}

/** The client a transaction's body uses: every statement on the transaction's own connection. */
class PostgresTransaction implements SqlClient {
  readonly dialect = "postgres" as const;
  readonly #connection: pg.PoolClient;
  readonly #depth: number;

  constructor(connection: pg.PoolClient, depth: number) {
    this.#connection = connection;
    this.#depth = depth;
  }

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return (await query<T>(this.#connection, sql, params)).rows;
  }

  async get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return (await query<T>(this.#connection, sql, params)).rows[0];
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return (await query(this.#connection, sql, params)).rowCount ?? 0;
  }

  /** A nested transaction is a savepoint: its throw undoes its own statements only. */
  async transaction<T>(body: (tx: SqlClient) => Promise<T>): Promise<T> {
    const name = `nested_${this.#depth + 1}`;
    await query(this.#connection, `SAVEPOINT ${name}`, []);
    try {
      const result = await body(new PostgresTransaction(this.#connection, this.#depth + 1));
      await query(this.#connection, `RELEASE SAVEPOINT ${name}`, []);
      return result;
    } catch (error) {
      await query(this.#connection, `ROLLBACK TO SAVEPOINT ${name}`, []);
      throw error;
    }
  }
}
