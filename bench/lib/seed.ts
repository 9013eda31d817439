import path from "node:path";
import { hashPassword, openStorage, SessionStore, UserStore } from "@parley/server";

export const BENCH_PASSWORD = "bench password 1";

export interface SeededUser {
  id: number;
  username: string;
  token: string;
}

/**
 * Creates `count` accounts with one live session each in a data dir, before the server starts,
 * through the server's own stores. Registration's scrypt hash (0.3 s by design) is computed once
 * and shared by every account, so thousands of users take a second instead of minutes; each
 * account still has a real password (BENCH_PASSWORD) and a real session token to `auth.resume`.
 */
export async function seedUsers(
  dataDir: string,
  count: number,
  prefix = "u",
  /** The server's `--database`, when not the data dir's SQLite file. */
  database?: string,
): Promise<SeededUser[]> {
  const hash = await hashPassword(BENCH_PASSWORD);
  const storage = await openStorage(database, path.join(dataDir, "parley.db"));
  try {
    const seeded: SeededUser[] = [];
    await storage.sql.transaction(async (tx) => {
      const users = new UserStore(tx);
      const sessions = new SessionStore(tx);
      for (let i = 0; i < count; i++) {
        const username = `${prefix}${i}`;
        const row = await users.create(username, `Bench ${prefix.toUpperCase()}${i}`, hash);
        if (!row) throw new Error(`user ${username} exists`);
        const { token } = await sessions.create(row.id, "bench", 24 * 3600 * 1000);
        seeded.push({ id: row.id, username, token });
      }
    });
    return seeded;
  } finally {
    await storage.close();
  }
}
