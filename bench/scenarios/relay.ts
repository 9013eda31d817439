import fs from "node:fs";
import { assignCalls, Cluster, type Context, type MeasuredWindow, mergeSparse, round } from "../lib/cluster.js";
import type { SparseHistogram } from "../lib/hist.js";
import { mediaThreads, type PinMode, rssBytes, sleep, startServerProcess, tempDir } from "../lib/proc.js";
import { LIMITS, RampStop } from "../lib/ramp-stop.js";
import { seedUsers } from "../lib/seed.js";

/** The server's media data planes (`--media-data-plane`): its default, native, and the two fallbacks. */
export type RelayDataPlane = "native" | "js" | "werift";

export interface RelayStep extends MeasuredWindow {
  calls: number;
  /** Server CPU per forwarded packet (each call forwards 2 x 50 packets/s). */
  serverUsPerPacket: number | null;
  /** The native plane's media threads' CPU (all of them) per forwarded packet; null on other planes. */
  mediaUsPerPacket: number | null;
  /** The server's memory after a full GC, read after the window (null for other relays). */
  serverMemoryAfterGc: { rssMiB: number; heapUsedMiB: number; externalMiB: number } | null;
  generatorUsPerPacket: number;
  serverRssMiB: number | null;
  serverEventLoopUtilization: number | null;
  /** Server GC pauses during the window (and the settle before it). */
  serverGc: { count: number; totalMs: number; maxMs: number; p99Ms: number } | null;
  setupSeconds: number;
  setupFailures: string[];
  /** account.get round trips from a few of the call participants during the window. */
  signalingRtt: ReturnType<typeof mergeSparse> | null;
}

export function relaySteps(quick: boolean): number[] {
  if (process.env.BENCH_RELAY_STEPS) return process.env.BENCH_RELAY_STEPS.split(",").map(Number);
  return quick ? [10, 40] : [20, 50, 100, 150, 200, 250, 300, 350, 400, 500, 600, 700, 800, 900, 1000];
}

/**
 * The comparison ramp on werift's RTP path (PARLEY_MEDIA_DATA_PLANE=werift), run in the same
 * `npm run bench` so both data planes are measured under the same conditions. werift's path
 * saturates near 140 calls per core, so a few steps below that suffice for its cost per packet.
 */
export function weriftSteps(quick: boolean): number[] {
  if (process.env.BENCH_weriftSteps) return process.env.BENCH_weriftSteps.split(",").map(Number);
  return quick ? [10] : [20, 50, 80, 110];
}

/** Steps of the native ramp with `--media-io-uring off` (full runs: where the generator keeps its schedule). */
export function syscallsSteps(quick: boolean): number[] {
  if (process.env.BENCH_SYSCALLS_STEPS) return process.env.BENCH_SYSCALLS_STEPS.split(",").map(Number);
  return quick ? [10] : [100, 150, 200, 300];
}

/** Steps of the scaling ramps (native plane, one and then two media threads, server on every core). */
export function threadsSteps(quick: boolean): number[] {
  if (process.env.BENCH_THREADS_STEPS) return process.env.BENCH_THREADS_STEPS.split(",").map(Number);
  return quick ? [10, 40] : [100, 200, 400];
}

export function usPerPacket(pct: number | null, calls: number): number | null {
  if (pct === null || calls === 0) return null;
  return round(((pct / 100) * 1e6) / (calls * 100), 1);
}

/** Packets per second the load generator actually sent in a window (each is forwarded once). */
export function offeredPerSecond(window: Pick<MeasuredWindow, "sent" | "windowSeconds">): number {
  return window.windowSeconds > 0 ? window.sent / window.windowSeconds : 0;
}

/**
 * CPU per packet the relay forwarded in a window: its CPU over the packets the generator actually
 * sent, not the step's nominal 100 per call (a generator short of CPU sends late and fewer, and
 * dividing by the nominal rate would make the relay look cheaper than it is).
 */
export function usPerSentPacket(
  pct: number | null | undefined,
  window: Pick<MeasuredWindow, "sent" | "windowSeconds">,
) {
  const rate = offeredPerSecond(window);
  if (pct === null || pct === undefined || rate === 0) return null;
  return round(((pct / 100) * 1e6) / rate, 1);
}

/** A step counts only if the generator sent at least this share of its nominal packets in the window. */
export const MIN_OFFERED_PCT = 98;

/**
 * Relay capacity: 1:1 calls through the real server process (signaling, relay legs, werift),
 * 50 packets/s of 20 ms Opus each way, ramped in steps until two steps in a row are overloaded.
 * `pinMode` "process" gives the whole server one core; "loop" gives its event-loop thread one core
 * to itself and puts V8's and libuv's helper threads on the other cores (see startServerProcess).
 */
export async function relayScenario(
  ctx: Context,
  options: {
    windowSeconds?: number;
    pinMode?: PinMode;
    dataPlane?: RelayDataPlane;
    steps?: number[];
    /** `--media-threads` (default: the server's, one per core it may run on). */
    mediaThreads?: number;
    /** The server's cores (taskset list) instead of the relay core, e.g. every core for the scaling ramps. */
    serverCores?: string;
    /** false: `--media-io-uring off` (the native plane's media threads make one system call per socket). */
    ioUring?: boolean;
  } = {},
) {
  const pinMode = options.pinMode ?? "process";
  const dataPlane = options.dataPlane ?? "native";
  const serverCores = options.serverCores ?? ctx.pinning.server;
  const steps = options.steps ?? relaySteps(ctx.quick);
  const windowSeconds = options.windowSeconds ?? Number(process.env.BENCH_WINDOW_SECONDS ?? (ctx.quick ? 3 : 10));
  const settleMs = ctx.quick ? 1500 : 3000;
  const dataDir = tempDir("parley-bench-relay-");
  const users = await seedUsers(dataDir, 2 * steps.at(-1)!);
  const server = await startServerProcess({
    dataDir,
    pin: serverCores,
    pinMode,
    helperCores: ctx.pinning.generators,
    // Named explicitly (native is also the default): a native plane that cannot load falls back to
    // js, which the media thread count below shows (none).
    env: { PARLEY_MEDIA_DATA_PLANE: dataPlane, PARLEY_MEDIA_IO_URING: options.ioUring === false ? "off" : "on" },
    extraArgs: options.mediaThreads ? ["--media-threads", String(options.mediaThreads)] : [],
  });
  const label = `${dataPlane}${options.ioUring === false ? ", io_uring off" : ""}${options.mediaThreads ? `, ${options.mediaThreads} media thread(s)` : ""}${
    options.serverCores ? `, server on core(s) ${options.serverCores}` : ""
  }`;
  const cluster = await Cluster.start(ctx, ctx.generators);
  const rows: RelayStep[] = [];
  let threadNames: string[] = [];
  let current = 0;
  const stop = new RampStop();
  try {
    for (const target of steps) {
      const groups = assignCalls(users, current, target, ctx.generators);
      const t0 = performance.now();
      await cluster.all("login", (g) => ({ url: server.url, users: groups[g]!.users, concurrency: 8 }));
      const setups = await cluster.all<{ failures: string[] }>("calls", (g) => ({
        pairs: groups[g]!.pairs,
        concurrency: 4,
        answer: "connected",
      }));
      const setupSeconds = round((performance.now() - t0) / 1000, 1);
      const setupFailures = setups.flatMap((s) => s.failures);
      current = target;
      await sleep(settleMs);
      await server.probe();
      const rttPending = cluster.all<{ latency: SparseHistogram }>("rtt", () => ({
        clients: 4,
        perClientPerSecond: 2,
        durationMs: windowSeconds * 1000,
      }));
      const window = await cluster.measure(windowSeconds, server.pid);
      const probe = await server.probe();
      const rtt = await rttPending;
      // Memory after a full GC, outside the window (the next step's first probe drops its pauses).
      const memory = (await server.probe(true)).memory;
      threadNames = mediaThreads(server.pid).map((t) => t.name);
      const mediaPct = window.cpu.mediaThreadsPct;
      const row: RelayStep = {
        calls: target,
        ...window,
        serverUsPerPacket: usPerSentPacket(window.cpu.serverPct, window),
        mediaUsPerPacket: mediaPct
          ? usPerSentPacket(
              mediaPct.reduce((a, b) => a + b, 0),
              window,
            )
          : null,
        serverMemoryAfterGc: {
          rssMiB: round(memory.rss / 2 ** 20, 1),
          heapUsedMiB: round(memory.heapUsed / 2 ** 20, 1),
          externalMiB: round(memory.external / 2 ** 20, 1),
        },
        generatorUsPerPacket: usPerPacket(window.cpu.generatorsPct, target)!,
        serverRssMiB: round(rssBytes(server.pid) / 2 ** 20, 1),
        serverEventLoopUtilization: round(probe.eventLoopUtilization, 3),
        serverGc: {
          count: probe.gc.count,
          totalMs: round(probe.gc.totalMs, 1),
          maxMs: round(probe.gc.maxMs, 2),
          p99Ms: round(probe.gc.p99Ms, 2),
        },
        setupSeconds,
        setupFailures,
        signalingRtt: mergeSparse(rtt.map((r) => r.latency)),
      };
      rows.push(row);
      ctx.log(
        `relay (${label}) ${target} calls: server ${window.cpu.serverPct}% cpu ` +
          `(event loop ${window.cpu.serverLoopPct}%` +
          (mediaPct ? `, media threads ${mediaPct.join(" + ")}%, ${row.mediaUsPerPacket} µs/packet` : "") +
          `), generators ${window.cpu.generatorsPct}%` +
          (window.engine ? ` (engine ${window.engine.sendUs} µs/sent, ${window.engine.receiveUs} µs/received)` : "") +
          `, loss ${window.lossPct}%, delay p50 ${window.delay.p50} p99 ${window.delay.p99} ms, ` +
          `send lateness p99 ${window.lateness.p99} ms, server GC ${probe.gc.count} pauses max ` +
          `${round(probe.gc.maxMs, 1)} ms, setup ${setupSeconds} s` +
          (setupFailures.length ? `, ${setupFailures.length} failed: ${setupFailures[0]}` : ""),
      );
      if (stop.after(window, target, setupFailures.length)) break;
    }
  } finally {
    await cluster.all("hangup", () => ({})).catch(() => undefined);
    await cluster.stop();
    await server.stop();
    if (process.env.BENCH_KEEP_SERVER_OUTPUT) fs.writeFileSync(process.env.BENCH_KEEP_SERVER_OUTPUT, server.output());
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return {
    pinMode,
    dataPlane,
    ioUring: options.ioUring !== false,
    /** The media threads the server ran (none: not the native plane). */
    mediaThreads: threadNames,
    serverCores: serverCores ?? null,
    windowSeconds,
    settleMs,
    steps: rows,
  };
}

/**
 * Direct baseline: the same generators, the same number of streams and the same fast path, but
 * each pair of legs connected to each other (werift to werift) without the server. Its delay is
 * what the generators and the loopback interface add by themselves at that load.
 */
export async function baselineScenario(ctx: Context, maxCalls: number, options: { windowSeconds?: number } = {}) {
  const steps = [...new Set([...relaySteps(ctx.quick), ...weriftSteps(ctx.quick), ...threadsSteps(ctx.quick)])]
    .sort((a, b) => a - b)
    .filter((n) => n <= maxCalls);
  const windowSeconds = options.windowSeconds ?? (ctx.quick ? 2 : 6);
  const cluster = await Cluster.start(ctx, ctx.generators);
  const rows: (MeasuredWindow & { calls: number; generatorUsPerPacket: number })[] = [];
  let current = 0;
  try {
    for (const target of steps) {
      const add = target - current;
      const results = await cluster.all<{ failures: string[] }>("direct", (g) => ({
        count: Math.floor(add / ctx.generators) + (g < add % ctx.generators ? 1 : 0),
        concurrency: 4,
      }));
      const failures = results.flatMap((r) => r.failures);
      if (failures.length) ctx.log(`baseline: ${failures.length} direct pairs failed: ${failures[0]}`);
      current = target;
      await sleep(1000);
      const window = await cluster.measure(windowSeconds, undefined);
      rows.push({ calls: target, ...window, generatorUsPerPacket: usPerPacket(window.cpu.generatorsPct, target)! });
      ctx.log(
        `baseline ${target} pairs: generators ${window.cpu.generatorsPct}% cpu, loss ${window.lossPct}%, ` +
          `delay p50 ${window.delay.p50} p99 ${window.delay.p99} ms`,
      );
    }
  } finally {
    await cluster.all("hangup", () => ({})).catch(() => undefined);
    await cluster.stop();
  }
  return { windowSeconds, steps: rows };
}

export type RelayResult = Awaited<ReturnType<typeof relayScenario>>;
export type BaselineResult = Awaited<ReturnType<typeof baselineScenario>>;

/** Added delay (relay minus baseline at the same load) and the verdict for each step; the capacity. */
export function relayVerdict(
  relay: Pick<RelayResult, "pinMode" | "steps"> & { dataPlane?: string },
  baseline: BaselineResult | undefined,
) {
  const steps = relay.steps.map((step) => {
    const base = baseline?.steps.find((b) => b.calls === step.calls) ?? baseline?.steps.at(-1);
    const addedP50 = base ? round(step.delay.p50 - base.delay.p50, 3) : null;
    const addedP99 = base ? round(step.delay.p99 - base.delay.p99, 3) : null;
    // The generator's own shortfall: a step it could not drive at its nominal rate is not that load.
    const offeredPct = round((100 * offeredPerSecond(step)) / (step.calls * 100), 1);
    const keptUp = offeredPct >= MIN_OFFERED_PCT;
    const pass =
      keptUp &&
      step.lossPct < LIMITS.lossPct &&
      (addedP99 ?? step.delay.p99) < LIMITS.addedP99Ms &&
      step.setupFailures.length === 0;
    return {
      calls: step.calls,
      serverCpuPct: step.cpu.serverPct,
      serverCoreBusyPct: step.cpu.serverCoreBusyPct,
      serverLoopCpuPct: step.cpu.serverLoopPct,
      generatorsCpuPct: step.cpu.generatorsPct,
      engine: step.engine,
      lossPct: step.lossPct,
      p50: step.delay.p50,
      p99: step.delay.p99,
      baselineP50: base?.delay.p50 ?? null,
      baselineP99: base?.delay.p99 ?? null,
      addedP50,
      addedP99,
      offeredPerSecond: Math.round(offeredPerSecond(step)),
      offeredPct,
      keptUp,
      serverUsPerPacket: usPerSentPacket(step.cpu.serverPct, step),
      mediaThreadsPct: step.cpu.mediaThreadsPct ?? null,
      mediaUsPerPacket: step.cpu.mediaThreadsPct
        ? usPerSentPacket(
            step.cpu.mediaThreadsPct.reduce((a, b) => a + b, 0),
            step,
          )
        : null,
      pass,
    };
  });
  // Capacity: the highest step such that it and every step below it passed.
  let capacity = 0;
  for (const s of steps) {
    if (!s.pass) break;
    capacity = s.calls;
  }
  const at = steps.find((s) => s.calls === capacity);
  const cpuAtCapacity = at?.serverCpuPct ?? null;
  // CPU ceiling: a straight line through CPU against calls over the loaded steps that were not
  // yet queueing (CPU per call is higher at low load: an idle core pays to wake up for every packet).
  const fitted = steps.filter(
    (s) =>
      s.keptUp &&
      s.lossPct < LIMITS.lossPct &&
      s.p50 < 5 &&
      (s.serverCpuPct ?? 0) >= 25 &&
      (s.serverCpuPct ?? 100) <= 97,
  );
  const process = fitCeiling(fitted.map((s) => [s.calls, s.serverCpuPct!]));
  // The generators' CPU over the same steps: what they spend per packet the server forwards.
  const generators = fitCeiling(fitted.map((s) => [s.calls, s.generatorsCpuPct]));
  // The native plane's media threads alone, over the same steps.
  const media = fitCeiling(
    fitted.filter((s) => s.mediaThreadsPct).map((s) => [s.calls, s.mediaThreadsPct!.reduce((a, b) => a + b, 0)]),
  );
  const core = fitCeiling(
    fitted.filter((s) => s.serverCoreBusyPct !== null).map((s) => [s.calls, s.serverCoreBusyPct!]),
  );
  // CPU per packet by average rather than by slope, at the busiest step that lost nothing and was
  // not yet far behind (p50 < 50 ms): fixed costs included, so a conservative ceiling, and one that
  // survives a shared machine, where other work on the server's core makes the slope unusable.
  // (A relay that never reaches a quarter of its core within the ramp, one the load generator
  // cannot saturate, is taken at its busiest clean step all the same.)
  const clean = steps.filter((s) => s.keptUp && s.lossPct < LIMITS.lossPct && s.p50 < 50);
  const averaged = clean.filter((s) => (s.serverCpuPct ?? 0) >= 25).at(-1) ?? clean.at(-1);
  const averageCeiling =
    averaged?.serverUsPerPacket != null
      ? {
          calls: averaged.calls,
          usPerPacket: averaged.serverUsPerPacket,
          mediaUsPerPacket: averaged.mediaUsPerPacket,
          ceilingCalls: Math.floor(1e6 / (averaged.serverUsPerPacket * 100)),
        }
      : null;
  return {
    pinMode: relay.pinMode,
    dataPlane: relay.dataPlane ?? "werift",
    averageCeiling,
    limits: LIMITS,
    steps,
    capacityCalls: capacity,
    /** The highest step that passed at all (GC stalls can fail a step below it). */
    highestPassingCalls: Math.max(0, ...steps.filter((s) => s.pass).map((s) => s.calls)),
    serverCpuPctAtCapacity: cpuAtCapacity,
    serverLoopCpuPctAtCapacity: at?.serverLoopCpuPct ?? null,
    /** Calls one full core would carry at the CPU cost measured at capacity (for unpinned or partly loaded runs). */
    callsPerCoreByCpu: at && cpuAtCapacity ? round((capacity * 100) / cpuAtCapacity, 0) : null,
    firstFailure: steps.find((s) => !s.pass) ?? null,
    /** Server CPU per extra forwarded packet, from the fit. */
    marginalUsPerPacket: process.usPerPacket,
    /** Calls at which the fit reaches 100% of the core: the CPU-bound ceiling, ignoring latency. */
    cpuCeilingCalls: process.ceiling,
    /** The native plane's media threads' CPU per extra forwarded packet, from the same kind of fit. */
    mediaMarginalUsPerPacket: media.usPerPacket,
    /** The load generators' CPU per forwarded packet (sending and receiving it), from the same kind of fit. */
    generatorMarginalUsPerPacket: generators.usPerPacket,
    /** The same fit on the server core's busy time (kernel network processing included). */
    coreMarginalUsPerPacket: core.usPerPacket,
    coreCeilingCalls: core.ceiling,
    fittedSteps: fitted.map((s) => s.calls),
  };
}

/**
 * Least-squares line through (calls, % of a core): the CPU per forwarded packet (a call forwards
 * 100 packets/s, so the slope in % per call x 100 is µs per packet) and the calls at 100%.
 */
export function fitCeiling(points: [number, number][]): { usPerPacket: number | null; ceiling: number | null } {
  if (points.length < 2) return { usPerPacket: null, ceiling: null };
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  const slope = sxx > 0 ? points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx : 0;
  if (!(slope > 0)) return { usPerPacket: null, ceiling: null };
  return { usPerPacket: round(slope * 100, 1), ceiling: Math.round((100 - (my - slope * mx)) / slope) };
}
