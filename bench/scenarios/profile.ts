import fs from "node:fs";
import path from "node:path";
import { assignCalls, Cluster, type Context } from "../lib/cluster.js";
import { summarizeProfile } from "../lib/cpuprofile.js";
import { ROOT, sleep, startServerProcess, tempDir } from "../lib/proc.js";
import { seedUsers } from "../lib/seed.js";

/**
 * A CPU profile of the server relaying 1:1 calls on the JS fast plane (`node --cpu-prof` on the server process), at
 * about 70% of the CPU ceiling the relay benchmark found (`ceiling`), summarised by self and
 * inclusive time.
 * The profiler itself costs some CPU, so the load is kept below saturation.
 * BENCH_PROFILE_DATA_PLANE=native profiles the native plane instead (its event loop: the per-leg
 * control work, see docs/performance.md "Event loop per native leg"); BENCH_PROFILE_SECONDS sets
 * the window, BENCH_PROFILE_KEEP=FILE keeps the raw profile.
 */
export async function profileScenario(ctx: Context, ceiling: number | undefined) {
  const calls = process.env.BENCH_PROFILE_CALLS
    ? Number(process.env.BENCH_PROFILE_CALLS)
    : ceiling
      ? // (at most 200: the generators, on the other core, drive about that many comfortably)
        Math.min(200, Math.max(10, Math.round((ceiling * 0.7) / 10) * 10))
      : ctx.quick
        ? 30
        : 100;
  const seconds = Number(process.env.BENCH_PROFILE_SECONDS ?? (ctx.quick ? 3 : 15));
  const dataPlane = process.env.BENCH_PROFILE_DATA_PLANE ?? "js";
  const dataDir = tempDir("parley-bench-profile-");
  const profileDir = path.join(dataDir, "cpuprofile");
  const users = await seedUsers(dataDir, 2 * calls);
  // On the JS fast plane: the native plane's media threads run no JavaScript, so a JavaScript profile
  // of it shows only the control plane (werift's ICE consent checks, DTLS and RTCP).
  const server = await startServerProcess({
    dataDir,
    pin: ctx.pinning.server,
    cpuProfileDir: profileDir,
    env: { PARLEY_MEDIA_DATA_PLANE: dataPlane },
  });
  const cluster = await Cluster.start(ctx, ctx.generators);
  let window: Awaited<ReturnType<Cluster["measure"]>> | undefined;
  let exitedAt = 0;
  try {
    const groups = assignCalls(users, 0, calls, ctx.generators);
    await cluster.all("login", (g) => ({ url: server.url, users: groups[g]!.users, concurrency: 8 }));
    await cluster.all("calls", (g) => ({ pairs: groups[g]!.pairs, concurrency: 4, answer: "connected" }));
    await sleep(2000);
    window = await cluster.measure(seconds, server.pid);
    ctx.log(
      `profile (${dataPlane}): ${calls} calls under the profiler: server ${window.cpu.serverPct}% cpu ` +
        `(event loop ${window.cpu.serverLoopPct}%), loss ${window.lossPct}%, ` +
        `delay p99 ${window.delay.p99} ms`,
    );
  } finally {
    // The profile is written when the server exits; stop it while the calls still run, so the
    // profile ends on the loaded relay (shutdown itself is a few milliseconds of it).
    await server.stop();
    exitedAt = Date.now();
    await cluster.all("hangup", () => ({})).catch(() => undefined);
    await cluster.stop();
  }
  const file = fs.readdirSync(profileDir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no .cpuprofile in ${profileDir}`);
  // Only the measurement window: no startup, call setup or shutdown.
  const summary = summarizeProfile(path.join(profileDir, file), 30, {
    fromEndMs: exitedAt - window!.startEpoch,
    toEndMs: exitedAt - window!.endEpoch,
  });
  let kept: string | null = null;
  if (process.env.BENCH_PROFILE_KEEP) {
    kept = process.env.BENCH_PROFILE_KEEP;
    fs.copyFileSync(path.join(profileDir, file), kept);
  } else if (!ctx.quick) {
    kept = path.join(ROOT, "bench/results/relay.cpuprofile.tmp");
    fs.copyFileSync(path.join(profileDir, file), kept);
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
  for (const f of summary.topSelf.slice(0, Number(process.env.BENCH_PROFILE_TOP ?? 8))) {
    ctx.log(`profile: ${f.selfPct}% self  ${f.function}  ${f.location}`);
  }
  return {
    calls,
    dataPlane,
    seconds,
    window: window!,
    rawProfile: kept ? path.relative(ROOT, kept) : null,
    summary,
  };
}
