import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launchServerProcess, serverProcessArgs } from "@parley/testkit";
import { Rpc } from "./ipc.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PROBE = path.join(ROOT, "bench/lib/server-probe.mjs");
const LOADGEN = path.join(ROOT, "bench/lib/loadgen.ts");

/** UDP port slices: the server's relay, and one slice per generator process. */
export const PORTS = {
  server: { min: 20000, max: 29999 },
  generators: { min: 10000, max: 19999 },
};

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** User + system CPU seconds a process has used (all its threads), from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the command name: state is field 3; utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** CPU seconds of one thread of a process (the main thread's id is the process id). */
export function threadCpuSeconds(pid: number, tid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * Seconds one thread has run on a CPU, from the scheduler's exact accounting
 * (/proc/PID/task/TID/schedstat, nanoseconds), not sampled at each tick as /proc/PID/stat is: a
 * thread using 1% of a core is hit by a tick only a few dozen times in a window.
 */
export function threadRunSeconds(pid: number, tid: number): number {
  return Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]) / 1e9;
}

/** The native data plane's media threads of a process (named parley-media-N): their thread ids, by name. */
export function mediaThreads(pid: number): { tid: number; name: string }[] {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .map((tid) => ({ tid: Number(tid), name: fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim() }))
      .filter((t) => t.name.startsWith("parley-media"))
      .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
  } catch {
    return [];
  }
}

/**
 * CPU seconds some cores have been busy, from /proc/stat: everything but idle and iowait, so
 * including interrupt and softirq time (the kernel's network processing), which /proc/PID/stat
 * does not charge to any process. `cores` is a taskset list such as "0" or "1-3".
 */
export function coresBusySeconds(cores: string): number {
  const wanted = new Set<number>();
  for (const part of cores.split(",")) {
    const [from, to] = part.split("-").map(Number);
    for (let c = from!; c <= (to ?? from!); c++) wanted.add(c);
  }
  let ticks = 0;
  for (const line of fs.readFileSync("/proc/stat", "utf8").split("\n")) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!match || !wanted.has(Number(match[1]))) continue;
    const [user, nice, system, , , irq, softirq, steal] = match[2]!.trim().split(/\s+/).map(Number);
    ticks += user! + nice! + system! + irq! + softirq! + steal!;
  }
  return ticks / CLOCK_TICKS;
}

/** Resident set size in bytes, from /proc/PID/status. */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

/** CPU use of some processes over an interval. */
export class CpuMeter {
  readonly #pids: number[];
  readonly #start: number[];
  readonly #t0 = performance.now();

  constructor(pids: number[]) {
    this.#pids = pids;
    this.#start = pids.map(cpuSeconds);
  }

  /** Per process: percent of one core over the interval so far. */
  read(): { pct: number[]; seconds: number[]; wall: number } {
    const wall = (performance.now() - this.#t0) / 1000;
    const seconds = this.#pids.map((pid, i) => cpuSeconds(pid) - this.#start[i]!);
    return { pct: seconds.map((s) => (100 * s) / wall), seconds, wall };
  }
}

export interface Pinning {
  available: boolean;
  server: string | undefined;
  generators: string | undefined;
  note: string;
}

/** Server on core 0, everything else on the other cores, when taskset and two or more cores are available. */
export function pinningPlan(): Pinning {
  const cores = os.availableParallelism();
  let taskset = false;
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    taskset = true;
  } catch {
    taskset = false;
  }
  if (!taskset || cores < 2) {
    return {
      available: false,
      server: undefined,
      generators: undefined,
      note: taskset ? "one core: server and load share it" : "no taskset: processes are not pinned",
    };
  }
  const generators = cores === 2 ? "1" : `1-${cores - 1}`;
  return {
    available: true,
    server: "0",
    generators,
    note: `server pinned to core 0, load generators and bench to core(s) ${generators}`,
  };
}

/** Pins this process (all its threads) to `cores`. */
export function pinSelf(cores: string | undefined): void {
  if (!cores) return;
  try {
    execFileSync("taskset", ["-a", "-p", "-c", cores, String(process.pid)], { stdio: "ignore" });
  } catch {
    // not fatal: numbers are then noisier
  }
}

/** A node command line, pinned to `pin` (taskset) when given. */
export function command(pin: string | undefined, args: string[]): [string, string[]] {
  return pin ? ["taskset", ["-c", pin, process.execPath, ...args]] : [process.execPath, args];
}

export interface ProbeSnapshot {
  memory: NodeJS.MemoryUsage;
  eventLoopUtilization: number;
  /** Garbage-collection pauses since the previous probe. */
  gc: { count: number; totalMs: number; maxMs: number; p99Ms: number };
}

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  dataDir: string;
  probeFile: string;
  output(): string;
  /** Memory, and event-loop utilisation since the last probe, measured inside the server (after a full GC if `gc`). */
  probe(gc?: boolean): Promise<ProbeSnapshot>;
  stop(): Promise<number | null>;
}

/** Runs `parley server` (the real CLI) pinned to the server core, and waits for its "listening on" line. */
export type PinMode = "process" | "loop";

export async function startServerProcess(options: {
  dataDir: string;
  pin: string | undefined;
  pinMode?: PinMode;
  /** With pinMode "loop": where the server's other threads run. */
  helperCores?: string;
  cpuProfileDir?: string;
  /** More `parley server` options, e.g. ["--max-conference", "64"]. */
  extraArgs?: string[];
  /** More environment for the server, e.g. { PARLEY_MEDIA_DATA_PLANE: "werift" }. */
  env?: Record<string, string>;
}): Promise<ServerProcess> {
  const probeFile = path.join(options.dataDir, "bench-probe.json");
  const nodeArgs = ["--expose-gc", "--import", PROBE];
  if (options.cpuProfileDir) nodeArgs.push("--cpu-prof", "--cpu-prof-dir", options.cpuProfileDir);
  // For investigations, e.g. BENCH_SERVER_NODE_FLAGS=--trace-gc (output lands in the server's log buffer).
  if (process.env.BENCH_SERVER_NODE_FLAGS) nodeArgs.push(...process.env.BENCH_SERVER_NODE_FLAGS.split(" "));
  // "process": the whole server (event loop, V8's GC helper threads, libuv's thread pool) on the
  // server core. "loop": the event-loop thread alone on the server core, the helper threads started
  // with it on the other cores (`helperCores`), as on a multi-core host with spare cores.
  const loopOnly = options.pinMode === "loop" && options.pin !== undefined && options.helperCores !== undefined;
  const [cmd, args] = command(loopOnly ? options.helperCores : options.pin, [
    ...nodeArgs,
    ...serverProcessArgs(options.dataDir),
    "--media-ports",
    `${PORTS.server.min}-${PORTS.server.max}`,
    "--ring-timeout",
    "120",
    "--console",
    "off",
    // Every simulated user connects from 127.0.0.1: the per-address cap (250 by default, for a
    // school behind one NAT address) would refuse most of them, so the bench lifts the caps.
    "--max-connections",
    "100000",
    "--max-connections-per-address",
    "100000",
    // The simulated users all log in (auth.resume) as they connect: the bench measures their
    // traffic, so the strangers' budget is lifted too (the login-flood scenario puts it back).
    "--anonymous-rate",
    "1000000",
    ...(options.extraArgs ?? []),
  ]);
  const { child, httpUrl, output, exited } = await launchServerProcess(cmd, args, {
    stdin: "ignore",
    env: { ...process.env, ...options.env, BENCH_PROBE_FILE: probeFile },
    timeoutMs: 20_000,
  });
  const pid = child.pid!;
  // Without -a, taskset moves only the thread whose id is given: the main (event-loop) thread.
  if (loopOnly) execFileSync("taskset", ["-p", "-c", options.pin!, String(pid)], { stdio: "ignore" });
  return {
    child,
    pid,
    url: `${httpUrl.replace("http", "ws")}/ws`,
    dataDir: options.dataDir,
    probeFile,
    output,
    async probe(gc = false) {
      fs.rmSync(probeFile, { force: true });
      if (gc) fs.writeFileSync(`${probeFile}.gc`, "");
      else fs.rmSync(`${probeFile}.gc`, { force: true });
      process.kill(pid, "SIGUSR2");
      for (let i = 0; i < 200; i++) {
        await sleep(25);
        if (fs.existsSync(probeFile)) return JSON.parse(fs.readFileSync(probeFile, "utf8"));
      }
      throw new Error("the server probe did not answer");
    },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export interface Worker {
  child: ChildProcess;
  pid: number;
  rpc: Rpc;
  stop(): Promise<void>;
}

/** Starts a bench TypeScript module as a child process with an IPC channel. */
export async function startWorker(
  kind: "loadgen",
  pin: string | undefined,
  handlers: Record<string, (args: never) => unknown> = {},
  env: Record<string, string> = {},
): Promise<Worker> {
  const script = LOADGEN;
  // For investigations, e.g. BENCH_LOADGEN_NODE_FLAGS="--cpu-prof --cpu-prof-dir /tmp/prof".
  const flags = process.env.BENCH_LOADGEN_NODE_FLAGS?.split(" ") ?? [];
  const [cmd, args] = command(pin, [...flags, "--import", "tsx", script]);
  const child = spawn(cmd, args, {
    cwd: ROOT,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, ...env },
  });
  const rpc = new Rpc(child, handlers);
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  child.on("exit", (code) => rpc.failAll(`${kind} exited with ${code}`));
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", () => resolve());
    child.once("error", reject);
  });
  return {
    child,
    pid: child.pid!,
    rpc,
    async stop() {
      if (child.exitCode !== null) return;
      await rpc.call("exit").catch(() => undefined);
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** The machine, runtime and code a result was measured on. */
export function environment(commandLine: string): Record<string, unknown> {
  const cpus = os.cpus();
  let commit = "unknown";
  let dirty = false;
  try {
    commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    // Code that differs from the commit; the pages and results a run rewrites do not count.
    const status = ["status", "--porcelain", "--", ".", ":!docs", ":!bench/results", ":!*.md"];
    dirty = execFileSync("git", status, { cwd: ROOT, encoding: "utf8" }).trim().length > 0;
  } catch {
    // not a git checkout
  }
  return {
    machine: {
      cpuModel: cpus[0]?.model ?? "unknown",
      cores: cpus.length,
      availableParallelism: os.availableParallelism(),
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    },
    node: process.version,
    git: { commit, dirty },
    command: commandLine,
    date: new Date().toISOString(),
  };
}
