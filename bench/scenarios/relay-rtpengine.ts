/**
 * The peer relay: rtpengine (Debian `rtpengine-daemon`, userspace forwarding, one worker thread,
 * pinned to the relay core) ramped like Parley's relay, with the same load generator, the same
 * legs (werift ICE + DTLS, then the native engine's SRTP, AEAD_AES_128_GCM as with Parley), the
 * same measurement windows and the same limits, in the same `npm run bench`. Each call is set up
 * over rtpengine's `ng` protocol (see bench/lib/rtpengine-call.ts) instead of Parley's signaling.
 * Skipped, with the reason recorded, where rtpengine is not installed.
 */
import fs from "node:fs";
import { Cluster, type Context, round } from "../lib/cluster.js";
import { PORTS, rssBytes, sleep } from "../lib/proc.js";
import { RampStop } from "../lib/ramp-stop.js";
import { rtpengineAvailable, startRtpengine } from "../lib/rtpengine.js";
import { type RelayStep, relaySteps, usPerPacket, usPerSentPacket } from "./relay.js";

/** rtpengine's worker threads: one, so its figures are per core like Parley's single event loop. */
const THREADS = 1;

export function rtpengineSteps(quick: boolean): number[] {
  if (process.env.BENCH_RTPENGINE_STEPS) return process.env.BENCH_RTPENGINE_STEPS.split(",").map(Number);
  return relaySteps(quick);
}

/** Names of a process's threads (all pinned with it, all in its CPU figure). */
function threadNames(pid: number): string[] {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .map((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim());
  } catch {
    return [];
  }
}

export interface RtpengineSkipped {
  skipped: string;
}

export async function rtpengineRelayScenario(ctx: Context, options: { windowSeconds?: number; steps?: number[] } = {}) {
  const available = rtpengineAvailable();
  if ("missing" in available) {
    ctx.log(`relay (rtpengine): skipped, ${available.missing}`);
    return { skipped: available.missing } satisfies RtpengineSkipped;
  }
  const steps = options.steps ?? rtpengineSteps(ctx.quick);
  const windowSeconds = options.windowSeconds ?? Number(process.env.BENCH_WINDOW_SECONDS ?? (ctx.quick ? 3 : 10));
  const settleMs = ctx.quick ? 1500 : 3000;
  // Parley's server is stopped by now: rtpengine takes the relay's port slice and core.
  const rtpengine = await startRtpengine({ pin: ctx.pinning.server, ports: PORTS.server, threads: THREADS });
  const threads = threadNames(rtpengine.pid);
  ctx.log(
    `relay (rtpengine ${rtpengine.version}): pid ${rtpengine.pid}, ${threads.length} threads (${threads.join(", ")}), ` +
      `ng on ${rtpengine.ng.host}:${rtpengine.ng.port}`,
  );
  const cluster = await Cluster.start(ctx, ctx.generators);
  const rows: RelayStep[] = [];
  let current = 0;
  const stop = new RampStop();
  try {
    for (const target of steps) {
      // Call i goes to generator i % generators (both its legs live there, as with Parley).
      const callIds = Array.from({ length: ctx.generators }, () => [] as string[]);
      for (let i = current; i < target; i++) callIds[i % ctx.generators]!.push(`bench-call-${i}`);
      const t0 = performance.now();
      const setups = await cluster.all<{ failures: string[] }>("rtpengineCalls", (g) => ({
        ng: rtpengine.ng,
        callIds: callIds[g]!,
        concurrency: 4,
      }));
      const setupSeconds = round((performance.now() - t0) / 1000, 1);
      const setupFailures = setups.flatMap((s) => s.failures);
      current = target;
      await sleep(settleMs);
      const window = await cluster.measure(windowSeconds, rtpengine.pid);
      const row: RelayStep = {
        calls: target,
        ...window,
        // rtpengine's main thread only waits for signals; its worker, timer and control threads
        // do the work. Its CPU is all of them (serverPct), as Parley's is all of its threads.
        cpu: { ...window.cpu, serverLoopPct: null },
        serverUsPerPacket: usPerSentPacket(window.cpu.serverPct, window),
        mediaUsPerPacket: null,
        serverMemoryAfterGc: null,
        generatorUsPerPacket: usPerPacket(window.cpu.generatorsPct, target)!,
        serverRssMiB: round(rssBytes(rtpengine.pid) / 2 ** 20, 1),
        serverEventLoopUtilization: null,
        serverGc: null,
        setupSeconds,
        setupFailures,
        signalingRtt: null,
      };
      rows.push(row);
      ctx.log(
        `relay (rtpengine) ${target} calls: rtpengine ${window.cpu.serverPct}% cpu, generators ` +
          `${window.cpu.generatorsPct}%` +
          (window.engine ? ` (engine ${window.engine.sendUs} µs/sent, ${window.engine.receiveUs} µs/received)` : "") +
          `, loss ${window.lossPct}%, delay p50 ${window.delay.p50} p99 ${window.delay.p99} ms, ` +
          `auth failures ${window.authFailures}, setup ${setupSeconds} s` +
          (setupFailures.length ? `, ${setupFailures.length} failed: ${setupFailures[0]}` : ""),
      );
      if (stop.after(window, target, setupFailures.length)) break;
    }
  } finally {
    await cluster.all("hangup", () => ({})).catch(() => undefined);
    await cluster.stop();
    await rtpengine.stop();
    if (process.env.BENCH_KEEP_SERVER_OUTPUT) {
      fs.writeFileSync(`${process.env.BENCH_KEEP_SERVER_OUTPUT}.rtpengine`, rtpengine.output());
    }
  }
  return {
    pinMode: "process" as const,
    dataPlane: "rtpengine",
    peer: {
      name: "rtpengine",
      version: rtpengine.version,
      command: rtpengine.args.join(" "),
      workerThreads: THREADS,
      threads,
    },
    windowSeconds,
    settleMs,
    steps: rows,
  };
}

export type RtpengineRelayResult = Exclude<Awaited<ReturnType<typeof rtpengineRelayScenario>>, RtpengineSkipped>;
