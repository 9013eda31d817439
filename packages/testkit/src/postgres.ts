import { execFile, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freeTcpPort } from "./free-port.js";

/** Where Debian's `postgresql` package puts its server binaries: /usr/lib/postgresql/VERSION/bin. */
const DEBIAN_ROOT = "/usr/lib/postgresql";

/** The role and database the tests connect as: an ordinary owner, not a superuser. */
const TEST_ROLE = "parley";

/** The newest installed PostgreSQL's bin directory, or undefined. */
function postgresBin(): string | undefined {
  let versions: string[];
  try {
    versions = fs.readdirSync(DEBIAN_ROOT);
  } catch {
    return undefined;
  }
  const usable = versions
    .filter((v) => fs.existsSync(path.join(DEBIAN_ROOT, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return usable[0] && path.join(DEBIAN_ROOT, usable[0], "bin");
}

/** Why a throwaway PostgreSQL cannot run here, or undefined when it can. */
export function postgresUnavailable(): string | undefined {
  if (!postgresBin()) return "PostgreSQL is not installed (Debian package postgresql; .ci/run installs it)";
  if (process.getuid?.() === 0 && !fs.existsSync("/usr/sbin/runuser")) return "runuser is missing (util-linux)";
  return undefined;
}

export interface Postgres {
  /** postgres://parley@127.0.0.1:PORT/parley: an empty database owned by the test role. */
  url: string;
  /** The cluster's data directory (its postmaster.pid names the server process). */
  dataDir: string;
  /** A fresh empty database on the same cluster, owned by the test role; its URL. */
  createDatabase(): Promise<string>;
  /**
   * Stops the cluster (fast shutdown: open connections are cut, as a restart does), runs
   * `whileDown`, then starts it again on the same port with the same data.
   */
  restart(whileDown?: () => Promise<void>): Promise<void>;
  /** Stops the cluster and removes its files. Idempotent. */
  stop(): Promise<void>;
  /** The same, synchronously (for a process that is exiting). */
  stopNow(): void;
}

/**
 * A throwaway PostgreSQL cluster: `initdb` in a temporary directory, `pg_ctl` on a free port of
 * 127.0.0.1 with its Unix socket in that directory (no system service, nothing shared with
 * another test), trust authentication. PostgreSQL refuses to run as root: when the tests run as
 * root, the cluster belongs to the `postgres` system user (Debian's package creates it) and its
 * commands run through `runuser`. `fsync` is off (the tests survive process restarts, not power
 * loss); commits stay synchronous, so a commit acknowledged before a restart is never lost.
 */
export async function startPostgres(): Promise<Postgres> {
  const unavailable = postgresUnavailable();
  if (unavailable) throw new Error(unavailable);
  const bin = postgresBin()!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-pg-"));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    fs.chmodSync(dir, 0o700);
    fs.chownSync(dir, ...postgresIds());
  }
  const data = path.join(dir, "data");
  const logFile = path.join(dir, "postgres.log");
  const run = (command: string, args: string[]) =>
    exec(asRoot ? "/usr/sbin/runuser" : path.join(bin, command), [
      ...(asRoot ? ["-u", "postgres", "--", path.join(bin, command)] : []),
      ...args,
    ]);
  const port = await freeTcpPort("127.0.0.1");
  await run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-N"]);
  const options = [
    `-c port=${port}`,
    "-c listen_addresses=127.0.0.1",
    `-c unix_socket_directories=${dir}`,
    "-c fsync=off",
    "-c full_page_writes=off",
    "-c max_connections=200",
  ].join(" ");
  const start = () => run("pg_ctl", ["-D", data, "-l", logFile, "-o", options, "-w", "-t", "60", "start"]);
  const psql = (database: string, sql: string) =>
    run("psql", ["-h", dir, "-p", String(port), "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-c", sql]);
  let running = false;
  const shutdown = async (mode: "fast" | "immediate") => {
    if (!running) return;
    running = false;
    await run("pg_ctl", ["-D", data, "-m", mode, "-w", "-t", "60", "stop"]);
  };
  let databases = 0;
  const createDatabase = async () => {
    const name = `parley_${++databases}`;
    await psql("postgres", `CREATE DATABASE ${name} OWNER ${TEST_ROLE}`);
    return `postgres://${TEST_ROLE}@127.0.0.1:${port}/${name}`;
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      await shutdown("immediate");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    try {
      if (running) {
        running = false;
        const args = ["-D", data, "-m", "immediate", "-w", "-t", "60", "stop"];
        const pgCtl = path.join(bin, "pg_ctl");
        if (asRoot) execFileSync("/usr/sbin/runuser", ["-u", "postgres", "--", pgCtl, ...args], { stdio: "ignore" });
        else execFileSync(pgCtl, args, { stdio: "ignore" });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    await start();
    running = true;
    await psql("postgres", `CREATE ROLE ${TEST_ROLE} LOGIN`);
    const url = await createDatabase();
    return {
      url,
      dataDir: data,
      createDatabase,
      async restart(whileDown) {
        await shutdown("fast");
        try {
          await whileDown?.();
        } finally {
          await start();
          running = true;
        }
      },
      stop,
      stopNow,
    };
  } catch (error) {
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : "";
    await stop().catch(() => undefined);
    throw new Error(`PostgreSQL did not start: ${(error as Error).message}\n${log}`, { cause: error });
  }
}

function postgresIds(): [number, number] {
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("postgres:"));
  const [, , uid, gid] = line?.split(":") ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error("PostgreSQL refuses to run as root and there is no 'postgres' user to run it as");
  }
  return [Number(uid), Number(gid)];
}

function exec(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: 120_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${path.basename(command)} ${args.join(" ")} failed: ${stderr || error.message}`));
      else resolve(stdout);
    });
    child.stdin?.end();
  });
}

let shared: Promise<Postgres> | undefined;

/**
 * One throwaway cluster for the whole test process (a test file), started on first use and
 * stopped when the process exits: each server or storage under test takes a fresh database of
 * its own on it (`createDatabase`), which costs a fraction of a second where a cluster costs one
 * or two.
 */
export function sharedPostgres(): Promise<Postgres> {
  if (!shared) {
    shared = startPostgres();
    shared.then(
      (cluster) => {
        process.once("exit", () => cluster.stopNow());
        // A test file the runner stops (its timeout sends SIGTERM) takes its cluster along, then
        // ends as the signal would have ended it.
        for (const signal of ["SIGTERM", "SIGINT"] as const) {
          process.once(signal, () => {
            cluster.stopNow();
            process.kill(process.pid, signal);
          });
        }
      },
      () => undefined,
    );
  }
  return shared;
}

/** The database back-ends Parley runs on, as the tests name them. */
export const BACKENDS = ["sqlite", "postgres"] as const;
export type Backend = (typeof BACKENDS)[number];

/** Why the tests cannot run on `backend` here (a skip reason), or undefined when they can. */
export function backendUnavailable(backend: Backend): string | undefined {
  return backend === "postgres" ? postgresUnavailable() : undefined;
}

/**
 * A `--database` value for a fresh, empty database on `backend`: undefined for SQLite (the
 * server's data dir), a new database on the shared cluster for PostgreSQL.
 */
export async function freshDatabase(backend: Backend): Promise<string | undefined> {
  return backend === "postgres" ? (await sharedPostgres()).createDatabase() : undefined;
}
