import { insertionOrder, placeholders, type SqlClient, type SqlValue } from "./sql-client.js";
import { TABLES, type TableName } from "./storage.js";

/** Rows read per statement while copying (keyset pages: each page starts after the last key). */
const PAGE_ROWS = 1000;
/** Parameters per INSERT at most (SQLite allows 32766, PostgreSQL 65535). */
const MAX_PARAMS = 30_000;

/**
 * How a table's rows are walked: the expressions of a unique key, in the order the copy keeps.
 * Calls go by insertion order (SQLite's rowid, PostgreSQL's seq), so calls that started in the
 * same millisecond keep their order; the target numbers them anew as they arrive.
 */
function keyOf(table: TableName, source: SqlClient, alias: string): string[] {
  switch (table) {
    case "calls":
      return [insertionOrder(source.dialect, alias)];
    case "call_participants":
      return [`${alias}.call_id`, `${alias}.position`];
    case "settings":
      return [`${alias}.key`];
    default:
      return [`${alias}.id`];
  }
}

/** Columns of the source that the target does not have (derived numbering). */
const SKIPPED_COLUMNS = new Set(["seq"]);
const KEY_PREFIX = "copy_key_";

/**
 * Copies every row of every Parley table from `source` into `target` (both inside their own
 * transaction, both at the same schema version), parents before children, a page at a time.
 * Values cross as the SqlClient gives them (times as ISO 8601 strings, flags as 0 and 1), which
 * both back-ends store alike. Resolves with the rows copied per table.
 */
export async function copyTables(source: SqlClient, target: SqlClient): Promise<Record<TableName, number>> {
  const copied = {} as Record<TableName, number>;
  for (const table of TABLES) {
    const keys = keyOf(table, source, "t");
    const keyColumns = keys.map((_, i) => `${KEY_PREFIX}${i}`);
    const select = `SELECT t.*, ${keys.map((key, i) => `${key} AS ${keyColumns[i]}`).join(", ")} FROM ${table} t`;
    const order = ` ORDER BY ${keys.join(", ")} LIMIT ${PAGE_ROWS}`;
    let after: SqlValue[] | undefined;
    let count = 0;
    for (;;) {
      const rows = after
        ? await source.all<Record<string, SqlValue>>(
            `${select} WHERE (${keys.join(", ")}) > (${placeholders(keys.length)})${order}`,
            after,
          )
        : await source.all<Record<string, SqlValue>>(select + order);
      if (rows.length === 0) break;
      const last = rows[rows.length - 1]!;
      after = keyColumns.map((column) => last[column] ?? null);
      await insertRows(target, table, rows);
      count += rows.length;
      if (rows.length < PAGE_ROWS) break;
    }
    copied[table] = count;
  }
  return copied;
}

async function insertRows(target: SqlClient, table: TableName, rows: Record<string, SqlValue>[]): Promise<void> {
  const columns = Object.keys(rows[0]!).filter((c) => !SKIPPED_COLUMNS.has(c) && !c.startsWith(KEY_PREFIX));
  const perStatement = Math.max(1, Math.floor(MAX_PARAMS / columns.length));
  const tuple = `(${placeholders(columns.length)})`;
  for (let i = 0; i < rows.length; i += perStatement) {
    const chunk = rows.slice(i, i + perStatement);
    const values: SqlValue[] = [];
    for (const row of chunk) for (const column of columns) values.push(row[column] ?? null);
    await target.run(
      `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${chunk.map(() => tuple).join(", ")}`,
      values,
    );
  }
}

/** Rows per table, counted through `sql` (inside a transaction: as that transaction sees them). */
export async function countRows(sql: SqlClient): Promise<Record<TableName, number>> {
  const counts = {} as Record<TableName, number>;
  for (const table of TABLES) {
    counts[table] = (await sql.get<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`))!.n;
  }
  return counts;
}
