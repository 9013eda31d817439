import fs from "node:fs";
import {
  type Postgres,
  postgresUnavailable,
  type Redis,
  redisUnavailable,
  startPostgres,
  startRedis,
} from "@parley/testkit";
import { Cluster, type Context, round, sum } from "../lib/cluster.js";
import { percentileOf } from "../lib/hist.js";
import type { CallTimings } from "../lib/loadgen.js";
import { CpuMeter, type ServerProcess, sleep, startServerProcess, tempDir } from "../lib/proc.js";
import { type SeededUser, seedUsers } from "../lib/seed.js";

/** Client processes, each placing one call at a time: three calls at once. */
const WORKERS = 3;

/** Each node advertises (and listens on) its own media address, all on loopback. */
const MEDIA_IP = ["127.0.0.11", "127.0.0.12", "127.0.0.13"] as const;

/** p50/p99/max of one timing over the calls, in ms. */
function spread(values: number[]) {
  return {
    p50: round(percentileOf(values, 0.5), 1),
    p99: round(percentileOf(values, 0.99), 1),
    max: round(Math.max(...values), 1),
  };
}

/**
 * One topology: `nodes` Parley servers on one PostgreSQL database (3: a cluster over Redis; 1: a
 * single server). Every call's caller is connected to node 1 and its callee to node 2 (on one
 * node, both to it): the call lives on node 1, the callee's requests are forwarded over Redis.
 */
async function runTopology(ctx: Context, options: { nodes: 1 | 3; calls: number; database: string; redis?: Redis }) {
  const warmup = WORKERS;
  const dirs = Array.from({ length: options.nodes }, () => tempDir("parley-bench-cluster-calls-"));
  const users = await seedUsers(dirs[0]!, 2 * (options.calls + warmup), "k", options.database);
  const servers: ServerProcess[] = [];
  const clients = await Cluster.start(ctx, WORKERS);
  try {
    for (const [i, dataDir] of dirs.entries()) {
      const extraArgs = [
        "--database",
        options.database,
        "--media-ip",
        MEDIA_IP[i]!,
        ...(options.redis ? ["--redis", options.redis.url] : []),
      ];
      // One after the other: the first brings the schema up to date.
      servers.push(await startServerProcess({ dataDir, pin: ctx.pinning.server, extraArgs }));
    }
    const pids = servers.map((s) => s.pid);
    const callerNode = servers[0]!;
    const calleeNode = servers[1 % options.nodes]!;
    await sleep(3000);

    // Call i: users 2i (caller, on node 1) -> 2i+1 (callee, on node 2), worker i % 3.
    const groups = Array.from({ length: WORKERS }, () => ({
      callers: [] as SeededUser[],
      callees: [] as SeededUser[],
      warmup: [] as { caller: string; callee: string }[],
      pairs: [] as { caller: string; callee: string }[],
    }));
    for (let i = 0; i < options.calls + warmup; i++) {
      const group = groups[i % WORKERS]!;
      const caller = users[2 * i]!;
      const callee = users[2 * i + 1]!;
      group.callers.push(caller);
      group.callees.push(callee);
      (i < warmup ? group.warmup : group.pairs).push({ caller: caller.username, callee: callee.username });
    }
    const logins = [
      ...(await clients.all<{ failures: number }>("login", (g) => ({
        url: callerNode.url,
        users: groups[g]!.callers,
        concurrency: 8,
      }))),
      ...(await clients.all<{ failures: number }>("login", (g) => ({
        url: calleeNode.url,
        users: groups[g]!.callees,
        concurrency: 8,
      }))),
    ];
    const loginFailures = sum(logins.map((l) => l.failures));
    if (loginFailures) throw new Error(`${loginFailures} logins failed`);
    await sleep(2000);

    // "ring": the callee answers the moment it rings (an auto-answering bot), so answer -> audio
    // holds both legs' ICE and DTLS, the callee's `call.media` forwarded to node 1 over Redis.
    const place = (pairs: (g: number) => { caller: string; callee: string }[]) =>
      clients.all<{ timings: CallTimings[]; failures: string[] }>("calls", (g) => ({
        pairs: pairs(g),
        concurrency: 1,
        answer: "ring",
        keep: false,
      }));
    // A few calls first, not counted: the code paths warm up (JIT) on every node.
    await place((g) => groups[g]!.warmup);
    await sleep(2000);
    // Idle: heartbeats and nothing else, to tell the calls' own CPU from the nodes' background.
    const idleMeter = new CpuMeter(pids);
    await sleep(ctx.quick ? 3000 : 8000);
    const idle = idleMeter.read();
    const meter = new CpuMeter(pids);
    const results = await place((g) => groups[g]!.pairs);
    const cpu = meter.read();
    const timings = results.flatMap((r) => r.timings);
    const failures = results.flatMap((r) => r.failures);
    const n = Math.max(1, timings.length);
    const result = {
      nodes: options.nodes,
      calls: timings.length,
      failures,
      concurrentCalls: WORKERS,
      seconds: round(cpu.wall, 1),
      /** call.invite sent -> call.incoming at the callee. */
      inviteToIncomingMs: spread(timings.map((t) => t.inviteToRingingMs)),
      /** call.answer sent -> its response. */
      answerResponseMs: spread(timings.map((t) => t.answerResponseMs)),
      /** call.answer sent -> first audio at both ends (both media legs connected and flowing). */
      answerToBothMediaMs: spread(timings.map((t) => Math.max(t.answerToAudioCalleeMs, t.answerToAudioCallerMs))),
      answerToAudioCallerMs: spread(timings.map((t) => t.answerToAudioCallerMs)),
      answerToAudioCalleeMs: spread(timings.map((t) => t.answerToAudioCalleeMs)),
      /** Offer -> leg connected, per end (the callee's through node 2 when on three nodes). */
      callerLegMs: spread(timings.map((t) => t.callerLegMs)),
      calleeLegMs: spread(timings.map((t) => t.calleeLegMs)),
      /** CPU ms per call, node by node (node 1: the call's node and the callers'; node 2: the callees'). */
      cpuMsPerCallPerNode: cpu.seconds.map((s) => round((1000 * s) / n, 1)),
      cpuMsPerCallTotal: round((1000 * sum(cpu.seconds)) / n, 1),
      /** Each node's CPU when idle (% of one core), and the per-call figures without it. */
      idleCpuPctPerNode: idle.pct.map((p) => round(p, 2)),
      cpuMsPerCallNetOfIdle: cpu.seconds.map((s, i) =>
        round((1000 * Math.max(0, s - (idle.seconds[i]! * cpu.wall) / idle.wall)) / n, 1),
      ),
    };
    ctx.log(
      `cluster-calls (${options.nodes} node(s)): ${result.calls} calls, invite->incoming p50 ${result.inviteToIncomingMs.p50} ` +
        `p99 ${result.inviteToIncomingMs.p99} ms, answer->both media p50 ${result.answerToBothMediaMs.p50} ` +
        `p99 ${result.answerToBothMediaMs.p99} ms; CPU per call ${result.cpuMsPerCallPerNode.join(" + ")} ms ` +
        `(${result.cpuMsPerCallNetOfIdle.join(" + ")} ms net of idle ${result.idleCpuPctPerNode.join(" / ")}%)` +
        (failures.length ? `; ${failures.length} failed: ${failures[0]}` : ""),
    );
    return result;
  } finally {
    await clients.all("hangup", () => ({})).catch(() => undefined);
    await clients.all("closeClients", () => ({})).catch(() => undefined);
    await clients.stop();
    for (const server of servers) await server.stop();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}

const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? round(a / b, 2) : null);

/**
 * Calls across cluster nodes: the same calls (caller on node 1, callee on node 2, each answered,
 * both media legs up, then hung up; three at once) on one server and on a cluster of three over
 * Redis, one after the other in one run, all on one PostgreSQL database. Measures set-up times
 * and CPU per call on each node. Reuses the given PostgreSQL and Redis, or starts its own.
 */
export async function clusterCallsScenario(ctx: Context, shared?: { postgres: Postgres; redis: Redis }) {
  const unavailable = postgresUnavailable() ?? redisUnavailable();
  if (unavailable) {
    ctx.log(`cluster-calls: skipped: ${unavailable}`);
    return { skipped: unavailable };
  }
  const calls = Number(process.env.BENCH_CLUSTER_CALLS ?? (ctx.quick ? 9 : 45));
  const postgres = shared?.postgres ?? (await startPostgres());
  const redis = shared?.redis ?? (await startRedis());
  try {
    const single = await runTopology(ctx, { nodes: 1, calls, database: await postgres.createDatabase() });
    const three = await runTopology(ctx, { nodes: 3, calls, database: await postgres.createDatabase(), redis });
    return {
      calls,
      single,
      three,
      /** Three nodes vs one, in this run. */
      ratios: {
        inviteToIncomingP50: ratio(three.inviteToIncomingMs.p50, single.inviteToIncomingMs.p50),
        inviteToIncomingP99: ratio(three.inviteToIncomingMs.p99, single.inviteToIncomingMs.p99),
        answerToBothMediaP50: ratio(three.answerToBothMediaMs.p50, single.answerToBothMediaMs.p50),
        answerToBothMediaP99: ratio(three.answerToBothMediaMs.p99, single.answerToBothMediaMs.p99),
        /** The call's node (node 1) alone vs the single server. */
        ownerNodeCpuPerCall: ratio(three.cpuMsPerCallPerNode[0]!, single.cpuMsPerCallPerNode[0]!),
        calleeNodeCpuPerCall: ratio(three.cpuMsPerCallPerNode[1]!, single.cpuMsPerCallPerNode[0]!),
        totalCpuPerCall: ratio(three.cpuMsPerCallTotal, single.cpuMsPerCallTotal),
        /** The same, net of each node's idle CPU. */
        ownerNodeCpuPerCallNet: ratio(three.cpuMsPerCallNetOfIdle[0]!, single.cpuMsPerCallNetOfIdle[0]!),
        calleeNodeCpuPerCallNet: ratio(three.cpuMsPerCallNetOfIdle[1]!, single.cpuMsPerCallNetOfIdle[0]!),
        totalCpuPerCallNet: ratio(sum(three.cpuMsPerCallNetOfIdle), sum(single.cpuMsPerCallNetOfIdle)),
      },
    };
  } finally {
    if (!shared) {
      await redis.stop();
      await postgres.stop();
    }
  }
}

export type ClusterCallsResult = Awaited<ReturnType<typeof clusterCallsScenario>>;
