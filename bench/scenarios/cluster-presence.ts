import fs from "node:fs";
import { postgresUnavailable, type Redis, redisUnavailable, startPostgres, startRedis } from "@parley/testkit";
import { Cluster, type Context, round, sum } from "../lib/cluster.js";
import { percentileOf } from "../lib/hist.js";
import { CpuMeter, type ServerProcess, sleep, startServerProcess, tempDir } from "../lib/proc.js";
import { type SeededUser, seedUsers } from "../lib/seed.js";
import type { ClusterCallsResult } from "./cluster-calls.js";

/** Client processes: worker i's users log in on node i (on one node, all on it). */
const WORKERS = 3;

/** Waits until every server is idle again (each under 5% of a core over half a second), at most `maxMs`. */
async function quiet(pids: number[], maxMs: number): Promise<void> {
  const end = performance.now() + maxMs;
  while (performance.now() < end) {
    const meter = new CpuMeter(pids);
    await sleep(500);
    if (meter.read().pct.every((pct) => pct < 5)) return;
  }
}

/** A series of a node's `/metrics` (exposure `local`: the bench runs on the loopback address). */
async function series(server: ServerProcess, name: string, label: string): Promise<number> {
  const text = await (await fetch(`${server.url.replace(/^ws/, "http").replace(/\/ws$/, "")}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(label));
  return Number(line?.split(" ").at(-1) ?? Number.NaN);
}

/** Frames the servers sent to their clients so far. */
const framesOut = async (servers: ServerProcess[]) =>
  sum(await Promise.all(servers.map((s) => series(s, "parley_signaling_messages_total", 'direction="out"'))));

/** Redis: PUBLISH commands run so far, and its CPU seconds (user + system). */
async function redisCounters(redis: Redis): Promise<{ publishes: number; cpuSeconds: number }> {
  const stats = await redis.command("INFO", "commandstats");
  const cpu = await redis.command("INFO", "cpu");
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(cpu)?.[1] ?? 0);
  return {
    publishes: Number(/cmdstat_publish:calls=(\d+)/.exec(stats)?.[1] ?? 0),
    cpuSeconds: field("used_cpu_user") + field("used_cpu_sys"),
  };
}

interface FanoutTrial {
  /** Per node the receivers are on: how long after the login was sent they heard of it (ms). */
  byNode: { node: number; receivers: number; p50: number; p99: number; max: number }[];
  loginMs: number;
}

/**
 * One topology: `nodes` Parley servers (3: a cluster over Redis; 1: a single server) on one
 * PostgreSQL database, `users` raw WebSocket clients spread evenly over the nodes.
 */
async function runTopology(ctx: Context, options: { nodes: 1 | 3; users: number; database: string; redis?: Redis }) {
  const probes = ctx.quick ? 2 : 5;
  const dirs = Array.from({ length: options.nodes }, () => tempDir("parley-bench-cluster-"));
  const seeded = await seedUsers(dirs[0]!, options.users + probes, "c", options.database);
  const users = seeded.slice(0, options.users);
  const probeUsers = seeded.slice(options.users);
  const extraArgs = ["--database", options.database, ...(options.redis ? ["--redis", options.redis.url] : [])];
  const servers: ServerProcess[] = [];
  const clients = await Cluster.start(ctx, WORKERS);
  try {
    // One after the other: the first brings the schema up to date.
    for (const dataDir of dirs) servers.push(await startServerProcess({ dataDir, pin: ctx.pinning.server, extraArgs }));
    const pids = servers.map((s) => s.pid);
    const nodeOf = (worker: number) => worker % options.nodes;
    await sleep(3000);

    // 1. The login storm: every user resumes their session, each worker on its node, at once.
    const groups: SeededUser[][] = Array.from({ length: WORKERS }, () => []);
    for (const [i, user] of users.entries()) groups[i % WORKERS]!.push(user);
    const redis0 = options.redis ? await redisCounters(options.redis) : undefined;
    const frames0 = await framesOut(servers);
    const meter = new CpuMeter(pids);
    const t0 = performance.now();
    const logins = await clients.all<{ failures: number }>("login", (g) => ({
      url: servers[nodeOf(g)]!.url,
      users: groups[g]!,
      concurrency: 16,
    }));
    const loginSeconds = (performance.now() - t0) / 1000;
    // Presence reaches everyone after the last reply: the storm ends when every server is idle.
    await quiet(pids, 120_000);
    const stormCpu = meter.read();
    const redis1 = options.redis ? await redisCounters(options.redis) : undefined;
    const frames = (await framesOut(servers)) - frames0;
    const failures = sum(logins.map((l) => l.failures));
    const storm = {
      users: options.users,
      loginSeconds: round(loginSeconds, 2),
      settledSeconds: round(stormCpu.wall, 2),
      failures,
      /** CPU seconds each node spent from the first login until every server was idle again. */
      cpuSecondsPerNode: stormCpu.seconds.map((s) => round(s, 2)),
      cpuSecondsTotal: round(sum(stormCpu.seconds), 2),
      cpuMsPerLogin: round((1000 * sum(stormCpu.seconds)) / options.users, 2),
      /** Frames sent to clients (every login is announced to every user online: about n^2/2 in all). */
      framesPerLogin: round(frames / options.users, 1),
      redisPublishesPerLogin: redis0 && redis1 ? round((redis1.publishes - redis0.publishes) / options.users, 3) : null,
      redisCpuSeconds: redis0 && redis1 ? round(redis1.cpuSeconds - redis0.cpuSeconds, 2) : null,
    };
    ctx.log(
      `cluster (${options.nodes} node(s)): ${options.users} logins in ${storm.loginSeconds} s, settled after ` +
        `${storm.settledSeconds} s, CPU ${storm.cpuSecondsPerNode.join(" + ")} s (${storm.cpuMsPerLogin} ms per login), ` +
        `${storm.framesPerLogin} frames and ${storm.redisPublishesPerLogin ?? "-"} Redis messages per login, ${failures} failed`,
    );

    // 2. Idle: heartbeats (clients' pings, the nodes' own) and nothing else.
    const idleMeter = new CpuMeter(pids);
    await sleep(ctx.quick ? 2000 : 10_000);
    const idleCpuPctPerNode = idleMeter.read().pct.map((p) => round(p, 2));

    // 3. Presence fan-out: one more user logs in on node 1; when do the clients on each node hear of it.
    const trials: FanoutTrial[] = [];
    for (const probe of probeUsers) {
      await clients.all("presenceArm", () => ({ userId: probe.id }));
      const sent = await clients.workers[0]!.rpc.call<{ sentAt: number; ms: number }>("loginAs", {
        url: servers[0]!.url,
        username: probe.username,
        token: probe.token,
      });
      await sleep(ctx.quick ? 1000 : 3000);
      const seen = await clients.all<{ seen: number[] }>("presenceCollect", () => ({}));
      const byNode = new Map<number, number[]>();
      for (const [worker, { seen: times }] of seen.entries()) {
        const node = nodeOf(worker);
        byNode.set(node, [...(byNode.get(node) ?? []), ...times.map((t) => t - sent.sentAt)]);
      }
      trials.push({
        loginMs: round(sent.ms, 2),
        byNode: [...byNode].map(([node, delays]) => ({
          node: node + 1,
          receivers: delays.length,
          p50: round(percentileOf(delays, 0.5), 2),
          p99: round(percentileOf(delays, 0.99), 2),
          max: round(Math.max(...delays), 2),
        })),
      });
      await quiet(pids, 10_000);
    }
    // Per node: the median trial's figures (by p99).
    const fanout = [...new Set(trials.flatMap((t) => t.byNode.map((n) => n.node)))].map((node) => {
      const rows = trials.map((t) => t.byNode.find((n) => n.node === node)!).sort((a, b) => a.p99 - b.p99);
      return rows[Math.floor(rows.length / 2)]!;
    });
    for (const row of fanout) {
      ctx.log(
        `cluster (${options.nodes} node(s)): a login on node 1 reached ${row.receivers} clients on node ${row.node}: ` +
          `p50 ${row.p50} ms, p99 ${row.p99} ms, last ${row.max} ms (median of ${trials.length} trials)`,
      );
    }
    return { nodes: options.nodes, storm, idleCpuPctPerNode, fanout, trials };
  } finally {
    await clients.all("closeClients", () => ({})).catch(() => undefined);
    await clients.stop();
    for (const server of servers) await server.stop();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Presence across three nodes: the same login storm and presence fan-out on a cluster of three
 * Parley servers (one Redis, one PostgreSQL, all on this machine) and on one server with the same
 * database, one after the other in one run. Measures the time from a login on node 1 until the
 * clients on node 3 hear of it, messages per login (frames to clients, Redis messages), and CPU
 * per node. Calls across nodes are measured in cluster-calls.ts; their figures of the same run are
 * carried in `callsAcrossNodes`.
 */
export async function clusterPresenceScenario(ctx: Context, calls?: ClusterCallsResult) {
  const unavailable = postgresUnavailable() ?? redisUnavailable();
  if (unavailable) {
    ctx.log(`cluster: skipped: ${unavailable}`);
    return { skipped: unavailable };
  }
  const users = Number(process.env.BENCH_CLUSTER_USERS ?? (ctx.quick ? 300 : 1500));
  const postgres = await startPostgres();
  const redis = await startRedis();
  try {
    const single = await runTopology(ctx, { nodes: 1, users, database: await postgres.createDatabase() });
    const three = await runTopology(ctx, { nodes: 3, users, database: await postgres.createDatabase(), redis });
    const remote = three.fanout.find((row) => row.node === 3);
    const local = single.fanout[0];
    return {
      users,
      single,
      three,
      /** Node 3's clients vs the single server's, p99 of the fan-out, in this run. */
      fanoutP99Ratio: remote && local && local.p99 > 0 ? round(remote.p99 / local.p99, 2) : null,
      cpuPerLoginRatio:
        single.storm.cpuMsPerLogin > 0 ? round(three.storm.cpuMsPerLogin / single.storm.cpuMsPerLogin, 2) : null,
      /** Calls across nodes: caller on node 1, callee on node 2 (cluster-calls.json for the detail). */
      callsAcrossNodes: callsSummary(calls),
    };
  } finally {
    await redis.stop();
    await postgres.stop();
  }
}

/** The calls-across-nodes figures of the same run (cluster-calls.json), in brief. */
function callsSummary(calls: ClusterCallsResult | undefined) {
  if (!calls) return "not run: see cluster-calls.json (node --import tsx bench/run.ts --only cluster-calls)";
  if ("skipped" in calls) return `skipped: ${calls.skipped}`;
  const brief = (t: typeof calls.single) => ({
    calls: t.calls,
    failures: t.failures.length,
    inviteToIncomingMs: t.inviteToIncomingMs,
    answerToBothMediaMs: t.answerToBothMediaMs,
    cpuMsPerCallPerNode: t.cpuMsPerCallPerNode,
  });
  return { single: brief(calls.single), three: brief(calls.three), ratios: calls.ratios };
}

export type ClusterPresenceResult = Awaited<ReturnType<typeof clusterPresenceScenario>>;
