import { type ChildProcess, execFile, spawn } from "node:child_process";
import fs from "node:fs";
import { freeTcpPort } from "./free-port.js";
import { tempDir } from "./test-server.js";

/** Where Debian's `redis-server` package installs the server. */
const REDIS_SERVER_PATHS = ["/usr/bin/redis-server", "/usr/sbin/redis-server"];

function redisServerBinary(): string | undefined {
  return REDIS_SERVER_PATHS.find((file) => fs.existsSync(file));
}

/** Why a throwaway Redis cannot run here, or undefined when it can. */
export function redisUnavailable(): string | undefined {
  return redisServerBinary() ? undefined : "Redis is not installed (Debian package redis-server; .ci/run installs it)";
}

export interface Redis {
  /** redis://127.0.0.1:PORT: the server's `--redis`. */
  url: string;
  port: number;
  /** Everything the current redis-server printed. */
  output(): string;
  /** Runs one command through `redis-cli` (e.g. `INFO commandstats`) and returns its answer. */
  command(...args: string[]): Promise<string>;
  /**
   * Stops the server (every connection cut; with no persistence, everything it held is gone, as
   * after a real restart without a dump), runs `whileDown`, then starts it again on the same port.
   */
  restart(whileDown?: () => Promise<void>): Promise<void>;
  /** Stops the server and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A throwaway Redis: Debian's redis-server on a free port of 127.0.0.1 with its working directory
 * in a temporary directory and no persistence (no RDB snapshots, no append-only file), nothing
 * shared with a system service or another test. It is stopped when the test process exits, and
 * when the runner stops the file (SIGTERM, SIGINT), which then ends as the signal would have.
 */
export async function startRedis(): Promise<Redis> {
  const unavailable = redisUnavailable();
  if (unavailable) throw new Error(unavailable);
  const binary = redisServerBinary()!;
  const dir = tempDir("parley-redis-");
  const port = await freeTcpPort("127.0.0.1");
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = "";

  const start = async () => {
    output = "";
    const server = spawn(
      binary,
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--logfile",
        "",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = server;
    exited = new Promise<void>((resolve) => server.once("exit", () => resolve()));
    const collect = (chunk: Buffer) => {
      output += chunk;
    };
    server.stdout!.on("data", collect);
    server.stderr!.on("data", collect);
    const deadline = Date.now() + 15_000;
    while (!/Ready to accept connections/.test(output)) {
      if (server.exitCode !== null || server.signalCode !== null) {
        throw new Error(`redis-server exited:\n${output}`);
      }
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  const halt = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    running.kill("SIGTERM");
    const killer = setTimeout(() => running.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(killer);
  };

  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    child?.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const onExit = () => stopNow();
  const onSignal = (signal: NodeJS.Signals) => {
    stopNow();
    process.kill(process.pid, signal);
  };
  process.once("exit", onExit);
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off("exit", onExit);
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    try {
      await halt();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  try {
    await start();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    output: () => output,
    command: (...args) =>
      new Promise((resolve, reject) => {
        execFile("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], (error, stdout, stderr) => {
          if (error) reject(new Error(`redis-cli ${args.join(" ")} failed: ${stderr || error.message}`));
          else resolve(stdout);
        });
      }),
    async restart(whileDown) {
      await halt();
      try {
        await whileDown?.();
      } finally {
        await start();
      }
    },
    stop,
  };
}
