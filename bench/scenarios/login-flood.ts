import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { DEFAULT_CONFIG } from "@parley/server";
import BetterSqlite3 from "better-sqlite3";
import { assignCalls, Cluster, type Context, type MeasuredWindow, round } from "../lib/cluster.js";
import { command, ROOT, sleep, startServerProcess, tempDir } from "../lib/proc.js";
import { seedUsers } from "../lib/seed.js";

const FLOOD = path.join(ROOT, "bench/lib/login-flood.ts");

export interface FloodCounts {
  attempts: number;
  replies: Record<string, number>;
  connections: number;
  refusedConnections: number;
}

export interface FloodWindow {
  flood: boolean;
  lossPct: number;
  delay: MeasuredWindow["delay"];
  serverCpuPct: number | null;
  serverLoopCpuPct: number | null;
  eventLoopUtilization: number;
  gcMaxMs: number;
}

/**
 * The relay under a login flood: `calls` 1:1 calls through the real server process, measured for
 * one window in quiet and one while another process floods the server with bad logins (many
 * source addresses, real and unknown accounts, new connections all the time; see
 * lib/login-flood.ts). Both windows in the same run, side by side: the relay's delay and loss must
 * not move, because refused attempts are counted in memory (audit summaries, not a disk write
 * each), password checks run on a bounded pool off the event loop, and floods are refused early.
 * Also reports how many audit rows the flood cost.
 */
export async function loginFloodScenario(ctx: Context, options: { calls?: number; windowSeconds?: number } = {}) {
  const calls = options.calls ?? (ctx.quick ? 20 : 60);
  const windowSeconds = options.windowSeconds ?? (ctx.quick ? 4 : 10);
  const concurrency = Number(process.env.BENCH_FLOOD_CONCURRENCY ?? 96);
  const dataDir = tempDir("parley-bench-flood-");
  const users = await seedUsers(dataDir, 2 * calls);
  // The flood meets the server's default strangers' budget (startServerProcess lifts it for the
  // other scenarios' own logins).
  const server = await startServerProcess({
    dataDir,
    pin: ctx.pinning.server,
    extraArgs: ["--anonymous-rate", String(DEFAULT_CONFIG.connectionLimits.anonymousPerSecond)],
  });
  const cluster = await Cluster.start(ctx, ctx.generators);
  const windows: FloodWindow[] = [];
  let counts: FloodCounts | undefined;
  let auditRows = 0;
  try {
    const groups = assignCalls(users, 0, calls, ctx.generators);
    await cluster.all("login", (g) => ({ url: server.url, users: groups[g]!.users, concurrency: 8 }));
    const setups = await cluster.all<{ failures: string[] }>("calls", (g) => ({
      pairs: groups[g]!.pairs,
      concurrency: 4,
      answer: "connected",
    }));
    const failures = setups.flatMap((s) => s.failures);
    if (failures.length) ctx.log(`login flood: ${failures.length} calls failed to set up: ${failures[0]}`);
    await sleep(ctx.quick ? 1500 : 3000);

    const measure = async (flood: boolean): Promise<FloodWindow> => {
      await server.probe();
      const window = await cluster.measure(windowSeconds, server.pid);
      const probe = await server.probe();
      const row: FloodWindow = {
        flood,
        lossPct: window.lossPct,
        delay: window.delay,
        serverCpuPct: window.cpu.serverPct,
        serverLoopCpuPct: window.cpu.serverLoopPct,
        eventLoopUtilization: round(probe.eventLoopUtilization, 3),
        gcMaxMs: round(probe.gc.maxMs, 2),
      };
      ctx.log(
        `login flood: ${calls} calls ${flood ? "WITH" : "without"} the flood: loss ${row.lossPct}%, delay p50 ` +
          `${row.delay.p50} p99 ${row.delay.p99} ms, server ${row.serverCpuPct}% cpu (event loop ${row.serverLoopCpuPct}%)`,
      );
      return row;
    };

    windows.push(await measure(false));
    // The flood runs through its window with a little lead-in, from its own process on the generators' cores.
    const floodSeconds = windowSeconds + 4;
    const names = users.slice(0, 50).map((u) => u.username);
    const [cmd, args] = command(ctx.pinning.generators, [
      "--import",
      "tsx",
      FLOOD,
      server.url,
      String(floodSeconds),
      String(concurrency),
      names.join(","),
    ]);
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    await sleep(2000);
    windows.push(await measure(true));
    await exited;
    counts = JSON.parse(output.trim().split("\n").at(-1) ?? "{}") as FloodCounts;
    ctx.log(
      `login flood: ${counts.attempts} bad logins in ${floodSeconds} s (${round(counts.attempts / floodSeconds, 0)}/s) ` +
        `on ${counts.connections} connections, replies ${JSON.stringify(counts.replies)}`,
    );
  } finally {
    await cluster.all("hangup", () => ({})).catch(() => undefined);
    await cluster.stop();
    await server.stop();
    try {
      const db = new BetterSqlite3(path.join(dataDir, "parley.db"), { readonly: true });
      auditRows = (
        db.prepare("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'login_failed'").get() as { n: number }
      ).n;
      db.close();
    } catch {
      // the count is informative only
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  const [quiet, flooded] = windows;
  return {
    calls,
    windowSeconds,
    concurrency,
    windows,
    flood: counts,
    auditRowsForFailedLogins: auditRows,
    /** p99 delay with the flood over p99 without it, in the same run. */
    p99Ratio: quiet && flooded && quiet.delay.p99 > 0 ? round(flooded.delay.p99 / quiet.delay.p99, 2) : null,
  };
}

export type LoginFloodResult = Awaited<ReturnType<typeof loginFloodScenario>>;
