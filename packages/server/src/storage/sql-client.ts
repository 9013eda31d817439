import { ParleyError } from "@parley/protocol";

/** The SQL dialects Parley stores its data in. */
export const SQL_DIALECTS = ["sqlite", "postgres"] as const;
export type SqlDialect = (typeof SQL_DIALECTS)[number];

/** What a statement takes as parameters: times as ISO 8601 strings, flags as 0 and 1. */
export type SqlValue = string | number | null;

/**
 * The one way the stores reach their database, whichever it is: statements written with `?`
 * placeholders, answered asynchronously (PostgreSQL is a server; SQLite's answers are ready at
 * once). Rows come back with the same JavaScript types from both: integers and counts as numbers,
 * times as ISO 8601 strings (`toISOString()` form), flags as 0 and 1.
 *
 * A statement outside `transaction` commits on its own. Inside it, every statement goes through
 * the `tx` client it is given: nobody else sees any of them until they all commit, and a throw
 * rolls them all back. A transaction's body runs statements only (no waiting on anything else:
 * SQLite's single connection is held meanwhile).
 */
export interface SqlClient {
  readonly dialect: SqlDialect;
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  /** Runs a statement; resolves with the number of rows it inserted, changed or deleted. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /** Runs `body` in one transaction (nested: inside the outer one). */
  transaction<T>(body: (tx: SqlClient) => Promise<T>): Promise<T>;
}

/**
 * A statement broke a unique constraint (a username taken meanwhile, by another request or
 * another Parley node): thrown by both drivers, so the stores turn it into the same ParleyError.
 */
export class UniqueViolation extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UniqueViolation";
  }
}

/** `?, ?, ?` for `count` values (an IN list). */
export function placeholders(count: number): string {
  return Array.from({ length: count }, () => "?").join(", ");
}

/** The larger of two expressions: `max(a, b)` in SQLite, `GREATEST(a, b)` in PostgreSQL. */
export function greatest(dialect: SqlDialect, a: string, b: string): string {
  return dialect === "postgres" ? `GREATEST(${a}, ${b})` : `max(${a}, ${b})`;
}

/** `expr` of the group's rows joined by `separator`, in `orderBy` order. */
export function joinedText(dialect: SqlDialect, expr: string, separator: string, orderBy: string): string {
  return dialect === "postgres"
    ? `string_agg(${expr}, '${separator}' ORDER BY ${orderBy})`
    : `group_concat(${expr}, '${separator}' ORDER BY ${orderBy})`;
}

/**
 * The column that orders a table's rows as they were inserted, for tables keyed by something else
 * (calls by their UUID): SQLite's implicit `rowid`, PostgreSQL's `seq` identity column.
 */
export function insertionOrder(dialect: SqlDialect, alias: string): string {
  return dialect === "postgres" ? `${alias}.seq` : `${alias}.rowid`;
}

/** The database could not be reached (PostgreSQL down or restarting): worth trying again later. */
export function isStorageUnavailable(error: unknown): boolean {
  return error instanceof ParleyError && error.code === "STORAGE_UNAVAILABLE";
}
