import { AsyncLocalStorage } from "node:async_hooks";
import type { Database, Statement } from "better-sqlite3";
import { type SqlClient, type SqlValue, UniqueViolation } from "./sql-client.js";

/** Prepared statements kept per connection; past this many (dynamic IN lists), the cache starts over. */
const STATEMENT_CACHE_MAX = 500;

/** The transaction whose body is running, for the check that its statements use its client. */
interface TransactionScope {
  client: SqliteClient;
  active: boolean;
}

const scopes = new AsyncLocalStorage<TransactionScope>();

/**
 * SqlClient over better-sqlite3's one synchronous connection. A statement runs at once (its
 * promise is already settled), unless a transaction is under way: SQLite's connection is shared,
 * so the transaction holds it from BEGIN to COMMIT across its body's awaits, and statements from
 * elsewhere wait for the COMMIT. Transactions take turns (BEGIN IMMEDIATE: the write lock at once,
 * so two never deadlock upgrading). A statement issued on this (outer) client from inside a
 * transaction's body would wait for that very transaction: it throws instead, naming the mistake.
 */
export class SqliteClient implements SqlClient {
  readonly dialect = "sqlite" as const;
  readonly #db: Database;
  readonly #statements = new Map<string, Statement>();
  #held = false;
  #released: Promise<void> = Promise.resolve();

  constructor(db: Database) {
    this.#db = db;
  }

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    await this.#turn();
    return this.allNow<T>(sql, params);
  }

  async get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    await this.#turn();
    return this.getNow<T>(sql, params);
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    await this.#turn();
    return this.runNow(sql, params);
  }

  async transaction<T>(body: (tx: SqlClient) => Promise<T>): Promise<T> {
    this.#checkScope();
    while (this.#held) await this.#released;
    this.#held = true;
    let release!: () => void;
    this.#released = new Promise((resolve) => {
      release = resolve;
    });
    const scope: TransactionScope = { client: this, active: true };
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        const result = await scopes.run(scope, () => body(new SqliteTransaction(this, 0)));
        this.#db.exec("COMMIT");
        return result;
      } catch (error) {
        if (this.#db.inTransaction) this.#db.exec("ROLLBACK");
        throw error;
      }
    } finally {
      scope.active = false;
      this.#held = false;
      release();
    }
  }

  /** Waits while a transaction holds the connection. */
  async #turn(): Promise<void> {
    this.#checkScope();
    while (this.#held) await this.#released;
  }

  #checkScope(): void {
    const scope = scopes.getStore();
    if (scope?.client === this && scope.active) {
      throw new Error("a statement inside a transaction must go through the transaction's client");
    }
  }

  /** @internal The statement now, on the connection as it stands (a transaction's own statements). */
  allNow<T>(sql: string, params: readonly SqlValue[]): T[] {
    return translate(() => this.#prepare(sql).all(...params) as T[]);
  }

  /** @internal */
  getNow<T>(sql: string, params: readonly SqlValue[]): T | undefined {
    return translate(() => this.#prepare(sql).get(...params) as T | undefined);
  }

  /** @internal */
  runNow(sql: string, params: readonly SqlValue[]): number {
    return translate(() => {
      const statement = this.#prepare(sql);
      // A statement with RETURNING reads rows; its count is theirs.
      return statement.reader ? statement.all(...params).length : statement.run(...params).changes;
    });
  }

  /** @internal */
  execNow(sql: string): void {
    this.#db.exec(sql);
  }

  #prepare(sql: string): Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      if (this.#statements.size >= STATEMENT_CACHE_MAX) this.#statements.clear();
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }
}

/** The client a transaction's body uses: statements run at once on the held connection. */
class SqliteTransaction implements SqlClient {
  readonly dialect = "sqlite" as const;
  readonly #outer: SqliteClient;
  readonly #depth: number;

  constructor(outer: SqliteClient, depth: number) {
    this.#outer = outer;
    this.#depth = depth;
  }

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return this.#outer.allNow<T>(sql, params);
  }

  async get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return this.#outer.getNow<T>(sql, params);
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return this.#outer.runNow(sql, params);
  }

  /** A nested transaction is a savepoint: its throw undoes its own statements only. */
  async transaction<T>(body: (tx: SqlClient) => Promise<T>): Promise<T> {
    const name = `nested_${this.#depth + 1}`;
    this.#outer.execNow(`SAVEPOINT ${name}`);
    try {
      const result = await body(new SqliteTransaction(this.#outer, this.#depth + 1));
      this.#outer.execNow(`RELEASE ${name}`);
      return result;
    } catch (error) {
      this.#outer.execNow(`ROLLBACK TO ${name}`);
      this.#outer.execNow(`RELEASE ${name}`);
      throw error;
    }
  }
}

/** better-sqlite3's unique-constraint errors as UniqueViolation; anything else as it is. */
function translate<T>(statement: () => T): T {
  try {
    return statement();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
      throw new UniqueViolation((error as Error).message, { cause: error });
    }
    throw error;
  }
}
