import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ParleyClient, type ParleyClientOptions } from "@parley/client";
import { DEFAULT_CONFIG, type ParleyServer, type StartOptions, startServer } from "@parley/server";
import WebSocket from "ws";
import { type Backend, freshDatabase } from "./postgres.js";

export function tempDir(prefix = "parley-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TestServer {
  server: ParleyServer;
  url: string;
  dataDir: string;
  /** Stops the server and removes its data dir. */
  stop(): Promise<void>;
}

export interface TestServerOptions extends StartOptions {
  /**
   * Where the data is kept: SQLite in the data dir (the default), or a fresh database of its own
   * on the test process's shared PostgreSQL cluster (`database`, when given, wins).
   */
  backend?: Backend;
}

/**
 * A real server in this process: port 0 on 127.0.0.1, a fresh temporary data dir (and with the
 * postgres backend, a fresh PostgreSQL database), logs to file only.
 */
export async function startTestServer(testOptions: TestServerOptions = {}): Promise<TestServer> {
  const { backend, ...options } = testOptions;
  const dataDir = options.dataDir ?? tempDir();
  if (backend && options.database === undefined) options.database = await freshDatabase(backend);
  let server: ParleyServer;
  try {
    server = await startServer({
      host: "127.0.0.1",
      port: 0,
      logToStdout: false,
      media: { ip: "127.0.0.1", portMin: 40000, portMax: 49999 },
      webRoot: WEB_ROOT,
      // Every test user registers from 127.0.0.1: the per-address registration throttle would stop
      // suites that create many accounts; the tests of that throttle set their own limits.
      workLimits: { ...DEFAULT_CONFIG.workLimits, registrationsPerAddress: 100_000 },
      ...options,
      dataDir,
    });
  } catch (error) {
    // A start that fails (the test may expect it) leaves no temporary data dir of its own behind.
    if (options.dataDir === undefined) fs.rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    server,
    url: server.signalingUrl,
    dataDir,
    async stop() {
      await server.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs `body` against a fresh test server started with `options`, and stops it whatever happens. */
export async function withTestServer(
  options: TestServerOptions,
  body: (s: TestServer) => Promise<void>,
): Promise<void> {
  const s = await startTestServer(options);
  try {
    await body(s);
  } finally {
    await s.stop();
  }
}

/** The SDK client in Node, on the `ws` WebSocket. */
export function sdkClient(url: string, options: Partial<ParleyClientOptions> = {}): ParleyClient {
  return new ParleyClient({
    ...options,
    url,
    webSocket: (u) => new WebSocket(u) as unknown as import("@parley/client").WebSocketLike,
    client: { name: "testkit", version: "0" },
  });
}

/** The built web client. */
export const WEB_ROOT = fileURLToPath(new URL("../../web/dist", import.meta.url));

/** Path of the `parley` command's entry point. */
export const PARLEY_BIN = fileURLToPath(new URL("../../cli/bin/parley.js", import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  httpUrl: string;
  output(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/**
 * Launches a `parley server` command line (`command` with `args`, e.g. node and the CLI, or a
 * CPU-pinning wrapper around them) and waits up to `timeoutMs` for its "listening on" line.
 * stdout and stderr are collected in `output()`.
 */
export async function launchServerProcess(
  command: string,
  args: string[],
  options: { stdin?: "pipe" | "ignore"; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ServerProcess> {
  const child = spawn(command, args, {
    stdio: [options.stdin ?? "pipe", "pipe", "pipe"],
    env: options.env ?? process.env,
  });
  let output = "";
  child.stdout!.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const httpUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${output}`)), options.timeoutMs ?? 15_000);
    const check = () => {
      const match = /listening on (https?:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on("data", check);
    child.on("exit", () => reject(new Error(`server exited: ${output}`)));
  });
  return { child, httpUrl, url: `${httpUrl.replace("http", "ws")}/ws`, output: () => output, exited };
}

/**
 * The arguments (after node's own) of a `parley server` on loopback, port 0, with `dataDir`,
 * quiet: what the tests' and the benchmarks' server processes share.
 */
export function serverProcessArgs(dataDir: string): string[] {
  return [
    PARLEY_BIN,
    "server",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--data-dir",
    dataDir,
    "--media-ip",
    "127.0.0.1",
    "--quiet",
  ];
}

/** Runs `parley server` as a child process (port 0) and waits for its "listening on" line. */
export function spawnServer(dataDir: string, args: string[] = []): Promise<ServerProcess> {
  return launchServerProcess(process.execPath, [...serverProcessArgs(dataDir), ...args]);
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `parley admin --data-dir DIR ...words` and returns its exit code and output. */
export function runAdmin(dataDir: string, words: string[]): Promise<ProcessResult> {
  return runParley(["admin", "--data-dir", dataDir, ...words]);
}

/** Runs the `parley` command with these arguments to completion. */
export function runParley(args: string[]): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [PARLEY_BIN, ...args]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

export interface BotRun {
  child: ChildProcess;
  /** Resolves with the exit code once the bot has exited. */
  exited: Promise<number | null>;
  output(): string;
}

/**
 * Runs `parley call` or `parley answer` as a child process; `wrap` turns its command line
 * (node, the CLI and the arguments) into the one to run, e.g. inside a network namespace.
 */
export function runBot(
  mode: "call" | "answer",
  args: string[],
  options: { wrap?: (argv: string[]) => string[] } = {},
): BotRun {
  const argv = [process.execPath, PARLEY_BIN, mode, ...args];
  const [command, ...rest] = options.wrap ? options.wrap(argv) : argv;
  const child = spawn(command!, rest, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (c) => {
    output += c;
  });
  child.stderr!.on("data", (c) => {
    output += c;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => output };
}
