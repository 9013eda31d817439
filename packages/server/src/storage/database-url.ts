import path from "node:path";

/** Where the data lives, as `--database` (PARLEY_DATABASE_URL) names it. */
export type DatabaseTarget = { kind: "sqlite"; file: string } | { kind: "postgres"; url: string };

/**
 * Reads `--database`: unset (or empty) is the SQLite file `defaultFile` in the data dir;
 * `sqlite:PATH` another SQLite file (relative to the working directory); `postgres://...` or
 * `postgresql://...` a PostgreSQL database. Anything else throws, naming the accepted forms.
 */
export function parseDatabaseUrl(value: string | undefined, defaultFile: string): DatabaseTarget {
  const text = value?.trim() ?? "";
  if (text === "") return { kind: "sqlite", file: defaultFile };
  if (/^postgres(ql)?:\/\//i.test(text)) {
    try {
      new URL(text);
    } catch {
      throw new Error(`--database '${redactDatabaseUrl(text)}' is not a valid URL`);
    }
    return { kind: "postgres", url: text };
  }
  const sqlite = /^sqlite:(?:\/\/)?(.+)$/i.exec(text);
  if (sqlite) return { kind: "sqlite", file: path.resolve(sqlite[1]!) };
  throw new Error(`--database must be postgres://USER@HOST/DB or sqlite:PATH, not '${redactDatabaseUrl(text)}'`);
}

/** The URL with its password (if any) replaced by `***`, fit for logs and error messages. */
export function redactDatabaseUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*:)[^@/]*@/i, "$1***@");
}
