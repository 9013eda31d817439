import path from "node:path";
import { OpusEncoder, readWav } from "@parley/audio";
import { Histogram, type SparseHistogram } from "./hist.js";
import type { CallTimings, WindowResult } from "./loadgen.js";
import {
  CpuMeter,
  coresBusySeconds,
  mediaThreads,
  type Pinning,
  PORTS,
  ROOT,
  sleep,
  startWorker,
  threadCpuSeconds,
  threadRunSeconds,
  type Worker,
} from "./proc.js";
import type { SeededUser } from "./seed.js";

/** What every scenario gets from the runner. */
export interface Context {
  quick: boolean;
  pinning: Pinning;
  generators: number;
  /** Pre-encoded 20 ms Opus frames (speech), base64. */
  frames: string[];
  /** The native RTP engine's binary (the generators' data plane), or null for their Node one. */
  engine: string | null;
  log(line: string): void;
}

/** Encodes a speech sample once into 20 ms Opus frames; generators only ever copy these bytes. */
export function encodeFrames(): string[] {
  const samples = readWav(path.join(ROOT, "samples/hello-en.wav"));
  const encoder = new OpusEncoder();
  const frames: string[] = [];
  try {
    for (let at = 0; at + 960 <= samples.length; at += 960) {
      frames.push(encoder.encode(samples.subarray(at, at + 960)).toString("base64"));
    }
  } finally {
    encoder.close();
  }
  return frames;
}

export interface MeasuredWindow {
  sent: number;
  expected: number;
  received: number;
  lossPct: number;
  delay: ReturnType<Histogram["summary"]>;
  lateness: ReturnType<Histogram["summary"]>;
  cpu: {
    /** All threads of the server process, % of one core. */
    serverPct: number | null;
    /** The server's main (event-loop) thread alone. */
    serverLoopPct: number | null;
    /**
     * The native data plane's media threads (parley-media-N), each in % of one core, in thread
     * order, from the scheduler's exact run time (schedstat); null where the server has none (the
     * js and werift planes, or another relay).
     */
    mediaThreadsPct: number[] | null;
    generatorsPct: number;
    generatorPct: number[];
    /**
     * How busy the server's core was (% of it), counting interrupt and softirq time (the kernel's
     * network processing, which no process is charged for) and anything else that ran there.
     */
    serverCoreBusyPct: number | null;
  };
  authFailures: number;
  /**
   * The native RTP engines' own accounting (exact CPU time, window and grace): µs per packet sent
   * (build, SRTP, sendto) and received (recvmmsg, SRTP check, bookkeeping), and their whole CPU
   * (pacing sleeps and commands included) per packet handled. Null on the Node data plane.
   */
  engine: { sendUs: number; receiveUs: number; cpuUsPerPacket: number } | null;
  /** Calls the server ended on its own so far (media failure, ...); none in a healthy run. */
  droppedCalls: number;
  windowSeconds: number;
  /** The window, in ms since the epoch. */
  startEpoch: number;
  endEpoch: number;
}

/** Several load generator processes, pinned to the generator cores. */
export class Cluster {
  readonly workers: Worker[];
  /** The generators' native RTP engine processes (none on the Node data plane). */
  readonly enginePids: number[];
  readonly #serverCore: string | undefined;

  private constructor(workers: Worker[], enginePids: number[], serverCore: string | undefined) {
    this.workers = workers;
    this.enginePids = enginePids;
    this.#serverCore = serverCore;
  }

  static async start(
    ctx: Context,
    count: number,
    handlers: Record<string, (args: never) => unknown> = {},
  ): Promise<Cluster> {
    const workers = await Promise.all(
      Array.from({ length: count }, () => startWorker("loadgen", ctx.pinning.generators, handlers)),
    );
    const slice = Math.floor((PORTS.generators.max - PORTS.generators.min + 1) / count);
    const inits = await Promise.all(
      workers.map((w, index) =>
        w.rpc.call<{ enginePid: number | null }>("init", {
          index,
          portMin: PORTS.generators.min + index * slice,
          portMax: PORTS.generators.min + (index + 1) * slice - 1,
          frames: ctx.frames,
          engine: ctx.engine,
        }),
      ),
    );
    const enginePids = inits.flatMap((i) => (i.enginePid === null ? [] : [i.enginePid]));
    return new Cluster(workers, enginePids, ctx.pinning.server);
  }

  /** Every load generator process: the Node ones and their engines (their CPU is the generators'). */
  get pids(): number[] {
    return [...this.workers.map((w) => w.pid), ...this.enginePids];
  }

  all<T>(cmd: string, args: (index: number) => unknown): Promise<T[]> {
    return Promise.all(this.workers.map((w, i) => w.rpc.call<T>(cmd, args(i))));
  }

  /**
   * One measurement window on every generator at once: packets sent in [start, start+seconds),
   * counted when they arrive up to `graceMs` later. CPU of the server (if any) and of the
   * generators is read over exactly the window.
   */
  async measure(seconds: number, serverPid: number | undefined, graceMs = 1000): Promise<MeasuredWindow> {
    const startEpoch = Date.now() + 300;
    const endEpoch = startEpoch + seconds * 1000;
    const pending = this.all<WindowResult>("measure", () => ({ startEpoch, endEpoch, graceMs }));
    await sleep(startEpoch - Date.now());
    const pids = serverPid === undefined ? this.pids : [serverPid, ...this.pids];
    const meter = new CpuMeter(pids);
    const serverCore = this.#serverCore;
    const core0 = serverCore === undefined ? 0 : coresBusySeconds(serverCore);
    const loop0 = serverPid === undefined ? 0 : threadCpuSeconds(serverPid, serverPid);
    const media = serverPid === undefined ? [] : mediaThreads(serverPid);
    const media0 = media.map((t) => threadRunSeconds(serverPid!, t.tid));
    await sleep(endEpoch - Date.now());
    const cpu = meter.read();
    const coreBusy = serverCore === undefined ? 0 : coresBusySeconds(serverCore) - core0;
    const loopSeconds = serverPid === undefined ? 0 : threadCpuSeconds(serverPid, serverPid) - loop0;
    const mediaSeconds = media.map((t, i) => threadRunSeconds(serverPid!, t.tid) - media0[i]!);
    const results = await pending;
    const delay = Histogram.from(...results.map((r) => r.delay));
    const lateness = Histogram.from(...results.map((r) => r.lateness));
    const sent = sum(results.map((r) => r.sent));
    const expected = sum(results.map((r) => r.expected));
    const received = sum(results.map((r) => r.received));
    const generatorPct = serverPid === undefined ? cpu.pct : cpu.pct.slice(1);
    return {
      sent,
      expected,
      received,
      lossPct: expected > 0 ? round((100 * (expected - Math.min(received, expected))) / expected, 4) : 0,
      delay: delay.summary(),
      lateness: lateness.summary(),
      cpu: {
        serverPct: serverPid === undefined ? null : round(cpu.pct[0]!, 2),
        serverLoopPct: serverPid === undefined ? null : round((100 * loopSeconds) / cpu.wall, 2),
        mediaThreadsPct: media.length ? mediaSeconds.map((s) => round((100 * s) / cpu.wall, 2)) : null,
        generatorsPct: round(sum(generatorPct), 2),
        generatorPct: generatorPct.map((p) => round(p, 2)),
        serverCoreBusyPct:
          serverPid === undefined || serverCore === undefined ? null : round((100 * coreBusy) / cpu.wall, 1),
      },
      authFailures: sum(results.map((r) => r.authFailures)),
      engine: engineCost(results),
      droppedCalls: sum(results.map((r) => r.droppedCalls)),
      windowSeconds: round(cpu.wall, 3),
      startEpoch,
      endEpoch,
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}

function engineCost(results: WindowResult[]): MeasuredWindow["engine"] {
  const engines = results.flatMap((r) => (r.engine ? [r.engine] : []));
  if (engines.length === 0) return null;
  const sent = sum(engines.map((e) => e.sent));
  const received = sum(engines.map((e) => e.received));
  const perPacket = (ms: number, packets: number) => (packets > 0 ? round((1000 * ms) / packets, 2) : 0);
  return {
    sendUs: perPacket(sum(engines.map((e) => e.sendMs)), sent),
    receiveUs: perPacket(sum(engines.map((e) => e.receiveMs)), received),
    cpuUsPerPacket: perPacket(sum(engines.map((e) => e.cpuMs)), sent + received),
  };
}

export function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** p50/p95/p99/max of each call-setup timing. */
export function summarizeTimings(timings: CallTimings[]): Record<string, ReturnType<Histogram["summary"]>> {
  const out: Record<string, ReturnType<Histogram["summary"]>> = {};
  const keys = Object.keys(timings[0] ?? {}) as (keyof CallTimings)[];
  for (const key of keys) {
    const h = new Histogram();
    for (const t of timings) h.record(t[key]);
    out[key] = h.summary();
  }
  return out;
}

export function mergeSparse(parts: SparseHistogram[]): ReturnType<Histogram["summary"]> {
  return Histogram.from(...parts).summary();
}

/** Assigns calls [from, to) to generators round-robin; call i is users 2i -> 2i+1. */
export function assignCalls(users: SeededUser[], from: number, to: number, generators: number) {
  const groups = Array.from({ length: generators }, () => ({
    users: [] as SeededUser[],
    pairs: [] as { caller: string; callee: string }[],
  }));
  for (let i = from; i < to; i++) {
    const group = groups[i % generators]!;
    const caller = users[2 * i]!;
    const callee = users[2 * i + 1]!;
    group.users.push(caller, callee);
    group.pairs.push({ caller: caller.username, callee: callee.username });
  }
  return groups;
}
