import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { postgresUnavailable, startPostgres } from "@parley/testkit";
import { Cluster, type Context, mergeSparse, round, sum } from "../lib/cluster.js";
import type { SparseHistogram } from "../lib/hist.js";
import { percentileOf } from "../lib/hist.js";
import { CpuMeter, rssBytes, sleep, startServerProcess, tempDir } from "../lib/proc.js";
import { BENCH_PASSWORD, type SeededUser, seedUsers } from "../lib/seed.js";

const MiB = 2 ** 20;

/** Waits until the server is idle again (under 5% of a core over half a second), at most `maxMs`. */
async function quiet(pid: number, maxMs: number): Promise<void> {
  const end = performance.now() + maxMs;
  while (performance.now() < end) {
    const meter = new CpuMeter([pid]);
    await sleep(500);
    if (meter.read().pct[0]! < 5) return;
  }
}

/**
 * Signaling: thousands of idle logged-in users (WebSocket + hello + auth.resume of a session made
 * beforehand: registering costs a 0.3 s scrypt hash by design, see seed.ts), memory per user,
 * login rates, the time for "user came online" to reach everyone, and request round trips.
 */
export async function signalingScenario(ctx: Context, options: { database?: string } = {}) {
  const idleUsers = ctx.quick ? 300 : 2000;
  const probes = 3;
  const passwordLogins = ctx.quick ? 6 : 24;
  const dataDir = tempDir("parley-bench-signaling-");
  const users = await seedUsers(dataDir, idleUsers + probes + passwordLogins, "u", options.database);
  const idle = users.slice(0, idleUsers);
  const probeUsers = users.slice(idleUsers, idleUsers + probes);
  const loginUsers = users.slice(idleUsers + probes);
  const server = await startServerProcess({
    dataDir,
    pin: ctx.pinning.server,
    ...(options.database ? { extraArgs: ["--database", options.database] } : {}),
  });
  // Thousands of WebSocket clients over (at least) three client processes, whatever the generator
  // count the relay uses: the offered load (logins at once, request rate) stays the same between runs.
  const processes = Math.max(3, ctx.generators);
  const cluster = await Cluster.start(ctx, processes);
  try {
    await sleep(1000);
    const before = await server.probe(true);
    const rssBefore = rssBytes(server.pid);

    // 1. Connect and log in every idle user (each login is announced to everyone already online).
    const groups: SeededUser[][] = Array.from({ length: processes }, () => []);
    for (const [i, user] of idle.entries()) groups[i % processes]!.push(user);
    const connectMeter = new CpuMeter([server.pid]);
    const t0 = performance.now();
    const logins = await cluster.all<{ latency: SparseHistogram; failures: number }>("login", (g) => ({
      url: server.url,
      users: groups[g]!,
      concurrency: 16,
    }));
    const connectSeconds = (performance.now() - t0) / 1000;
    const connectCpu = connectMeter.read();
    const loginFailures = sum(logins.map((l) => l.failures));
    ctx.log(
      `signaling: ${idleUsers} users connected and resumed in ${round(connectSeconds, 1)} s ` +
        `(${round(idleUsers / connectSeconds, 0)}/s, server ${round(connectCpu.pct[0]!, 0)}% cpu, ${loginFailures} failed)`,
    );
    await quiet(server.pid, 60_000);
    await sleep(1000);
    const after = await server.probe(true);
    const rssAfter = rssBytes(server.pid);
    const memory = {
      users: idleUsers,
      before: { rssMiB: round(rssBefore / MiB, 1), heapUsedMiB: round(before.memory.heapUsed / MiB, 1) },
      after: { rssMiB: round(rssAfter / MiB, 1), heapUsedMiB: round(after.memory.heapUsed / MiB, 1) },
      rssKiBPerUser: round((rssAfter - rssBefore) / 1024 / idleUsers, 1),
      heapKiBPerUser: round((after.memory.heapUsed - before.memory.heapUsed) / 1024 / idleUsers, 1),
      externalKiBPerUser: round(
        (after.memory.external + after.memory.arrayBuffers - before.memory.external - before.memory.arrayBuffers) /
          1024 /
          idleUsers,
        1,
      ),
    };
    ctx.log(
      `signaling: memory per idle user ${memory.rssKiBPerUser} KiB RSS, ${memory.heapKiBPerUser} KiB JS heap (after GC)`,
    );

    // 2. Idle cost: heartbeats (a ping every 5 s per connection) and nothing else.
    const idleMeter = new CpuMeter([server.pid]);
    await sleep(ctx.quick ? 2000 : 10_000);
    const idleCpuPct = round(idleMeter.read().pct[0]!, 2);

    // 3. Presence fan-out: one more user logs in; how long until every connected user hears of it.
    const fanouts: { receivers: number; p50: number; p99: number; max: number; loginMs: number }[] = [];
    for (const probe of probeUsers) {
      await cluster.all("presenceArm", () => ({ userId: probe.id }));
      const [sent] = await Promise.all([
        cluster.workers[0]!.rpc.call<{ sentAt: number; ms: number }>("loginAs", {
          url: server.url,
          username: probe.username,
          token: probe.token,
        }),
      ]);
      await sleep(ctx.quick ? 1000 : 3000);
      const seen = (await cluster.all<{ seen: number[] }>("presenceCollect", () => ({}))).flatMap((s) => s.seen);
      const delays = seen.map((t) => t - sent!.sentAt);
      fanouts.push({
        receivers: delays.length,
        p50: round(percentileOf(delays, 0.5), 2),
        p99: round(percentileOf(delays, 0.99), 2),
        max: round(Math.max(...delays), 2),
        loginMs: round(sent!.ms, 2),
      });
      await quiet(server.pid, 10_000);
    }
    const fanout = fanouts[Math.floor(fanouts.length / 2)]!;
    ctx.log(
      `signaling: presence of one login reached ${fanout.receivers} users: p50 ${fanout.p50} ms, p99 ${fanout.p99} ms, last ${fanout.max} ms`,
    );

    // 4. Request round trips under load: account.get from many connections at once.
    const rttClients = ctx.quick ? 30 : 100;
    const perClient = 5;
    const rttMeter = new CpuMeter([server.pid]);
    const rtts = await cluster.all<{ latency: SparseHistogram; failures: number; clients: number }>("rtt", () => ({
      clients: rttClients,
      perClientPerSecond: perClient,
      durationMs: ctx.quick ? 2000 : 10_000,
    }));
    const rttCpu = round(rttMeter.read().pct[0]!, 1);
    const rtt = mergeSparse(rtts.map((r) => r.latency));
    const requestsPerSecond = sum(rtts.map((r) => r.clients)) * perClient;
    ctx.log(
      `signaling: account.get at ${requestsPerSecond}/s with ${idleUsers} users online: p50 ${rtt.p50} ms, ` +
        `p99 ${rtt.p99} ms (server ${rttCpu}% cpu)`,
    );

    // 5. Password logins (scrypt, N=2^17, on libuv's thread pool) on fresh connections.
    const pwGroups: { username: string; password: string }[][] = Array.from({ length: processes }, () => []);
    for (const [i, u] of loginUsers.entries()) {
      pwGroups[i % processes]!.push({ username: u.username, password: BENCH_PASSWORD });
    }
    const pwMeter = new CpuMeter([server.pid]);
    const pw0 = performance.now();
    const pw = await cluster.all<{ latency: SparseHistogram; failures: number }>("passwordLogins", (g) => ({
      url: server.url,
      users: pwGroups[g]!,
      concurrency: 4,
    }));
    const pwSeconds = (performance.now() - pw0) / 1000;
    const pwCpu = pwMeter.read();
    const passwordLatency = mergeSparse(pw.map((p) => p.latency));
    const passwordRate = round(passwordLogins / pwSeconds, 1);
    ctx.log(
      `signaling: ${passwordLogins} password logins at ${passwordRate}/s, p50 ${passwordLatency.p50} ms ` +
        `(server ${round(pwCpu.pct[0]!, 0)}% of one core, scrypt runs on the thread pool)`,
    );

    return {
      idleUsers,
      resume: {
        users: idleUsers,
        seconds: round(connectSeconds, 2),
        perSecond: round(idleUsers / connectSeconds, 1),
        concurrency: 16 * processes,
        failures: loginFailures,
        latency: mergeSparse(logins.map((l) => l.latency)),
        serverCpuPct: round(connectCpu.pct[0]!, 1),
        /** Every login is announced to every user online, so n logins cost n^2/2 events. */
        presenceEventsPushed: (idleUsers * (idleUsers - 1)) / 2,
      },
      memory,
      idleCpuPct,
      presenceFanout: { trials: fanouts, median: fanout },
      requestRtt: { requestsPerSecond, clients: sum(rtts.map((r) => r.clients)), ...rtt, serverCpuPct: rttCpu },
      passwordLogin: {
        logins: passwordLogins,
        concurrency: 4 * processes,
        perSecond: passwordRate,
        latency: passwordLatency,
        failures: sum(pw.map((p) => p.failures)),
        serverCpuPct: round(pwCpu.pct[0]!, 1),
      },
    };
  } finally {
    await cluster.all("closeClients", () => ({})).catch(() => undefined);
    await cluster.stop();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * The signaling scenario on the embedded SQLite file and then on PostgreSQL (a throwaway cluster
 * on this machine, as testkit starts it, on the server's core: fsync off, so commits cost a round
 * trip, not a disk flush), for the figures side by side. Skipped, with the reason, where PostgreSQL is not installed.
 */
export async function signalingOnBothDatabases(ctx: Context) {
  const unavailable = postgresUnavailable();
  if (unavailable) {
    ctx.log(`signaling-postgres: skipped: ${unavailable}`);
    return { skipped: unavailable };
  }
  ctx.log("signaling-postgres: on SQLite");
  const sqlite = await signalingScenario(ctx);
  const cluster = await startPostgres();
  try {
    // PostgreSQL shares the server's core (as on a one-machine install), not the load generators'.
    if (ctx.pinning.server) {
      const postmaster = fs.readFileSync(path.join(cluster.dataDir, "postmaster.pid"), "utf8").split("\n")[0]!;
      execFileSync("taskset", ["-a", "-p", "-c", ctx.pinning.server, postmaster], { stdio: "ignore" });
    }
    ctx.log("signaling-postgres: on PostgreSQL");
    const postgres = await signalingScenario(ctx, { database: await cluster.createDatabase() });
    const line = (name: string, r: typeof sqlite) =>
      `${name}: password logins ${r.passwordLogin.perSecond}/s (p50 ${r.passwordLogin.latency.p50} ms), ` +
      `resumes ${r.resume.perSecond}/s, account.get p50 ${r.requestRtt.p50} ms p99 ${r.requestRtt.p99} ms`;
    ctx.log(`signaling-postgres: ${line("SQLite", sqlite)}`);
    ctx.log(`signaling-postgres: ${line("PostgreSQL", postgres)}`);
    return { sqlite, postgres };
  } finally {
    await cluster.stop();
  }
}
