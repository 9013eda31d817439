/**
 * The native RTP engine (`bench/native/rtp-engine.c`): built here with the system C compiler,
 * with the native data plane's SRTP (OpenSSL's libcrypto) and io_uring, driven over its
 * stdin/stdout line protocol.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { ROOT } from "./proc.js";

const SOURCE = path.join(ROOT, "bench/native/rtp-engine.c");
const BINARY = path.join(ROOT, "bench/native/build/rtp-engine");
/** The native data plane's SRTP and io_uring, which the engine is built with. */
const PLANE = path.join(ROOT, "packages/rtc/native");
const PLANE_SOURCES = ["srtp.c", "uring.c"].map((name) => path.join(PLANE, name));
const PLANE_HEADERS = ["srtp.h", "uring.h", "rtp.h"].map((name) => path.join(PLANE, name));

/**
 * The engine's SRTP: the native data plane's (OpenSSL, what the bench runs), or libsrtp (the
 * reference implementation, on NSS in Debian: slower, for checking a relay's SRTP against it).
 */
export type EngineSrtp = "openssl" | "libsrtp";

/**
 * Builds the engine if its binary is missing or older than a source. Returns the binary's path,
 * or why it cannot be built (the load generators then run their Node data plane).
 */
export function buildEngine(srtp: EngineSrtp = "openssl"): { binary: string } | { error: string } {
  const binary = srtp === "openssl" ? BINARY : `${BINARY}-libsrtp`;
  const sources = srtp === "openssl" ? [SOURCE, ...PLANE_SOURCES] : [SOURCE, path.join(PLANE, "uring.c")];
  const built = fs.existsSync(binary) ? fs.statSync(binary).mtimeMs : -1;
  if ([...sources, ...PLANE_HEADERS].every((file) => fs.statSync(file).mtimeMs <= built)) return { binary };
  const header = srtp === "openssl" ? "/usr/include/openssl/evp.h" : "/usr/include/srtp2/srtp.h";
  if (!fs.existsSync(header)) {
    const pkg = srtp === "openssl" ? "libssl-dev" : "libsrtp2-dev";
    return { error: `${srtp}'s headers are missing (apt-get install -y ${pkg})` };
  }
  fs.mkdirSync(path.dirname(binary), { recursive: true });
  const flags = srtp === "openssl" ? ["-lcrypto"] : ["-DENGINE_LIBSRTP", "-lsrtp2"];
  const cc = spawnSync("cc", ["-O2", "-Wall", "-Wextra", "-I", PLANE, "-o", binary, ...sources, ...flags], {
    encoding: "utf8",
  });
  if (cc.status !== 0) return { error: `cc failed: ${(cc.stderr || cc.error?.message || "").trim()}` };
  return { binary };
}

type Pending = { resolve: (json: unknown) => void; reject: (error: Error) => void };

/** One running engine process. */
export class NativeEngine {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #closed = false;
  /** A leg's first RTP packet arrived (epoch ms). */
  onFirst: ((leg: number, epochMs: number) => void) | undefined;
  /** A datagram that is not RTP (STUN, DTLS) arrived on a leg: werift's business. */
  onDatagram: ((leg: number, data: Buffer, address: string, port: number) => void) | undefined;

  private constructor(child: ChildProcess) {
    this.#child = child;
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => this.#line(line));
    child.on("exit", (code, signal) => {
      this.#closed = true;
      const error = new Error(`the RTP engine exited (${signal ?? code})`);
      for (const pending of this.#pending.values()) pending.reject(error);
      this.#pending.clear();
    });
  }

  static start(binary: string): Promise<NativeEngine> {
    const child = spawn(binary, [], { stdio: ["pipe", "pipe", "inherit"] });
    const engine = new NativeEngine(child);
    return new Promise((resolve, reject) => {
      child.once("error", reject);
      // An engine that exits before it is ready (srtp_init failed, say) must not leave start() hanging.
      child.once("exit", (code, signal) => reject(new Error(`the RTP engine exited at start (${signal ?? code})`)));
      engine.#ready = () => resolve(engine);
    });
  }

  /** Resolves start() at the engine's "ready" line. */
  #ready: (() => void) | undefined;

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  #line(line: string): void {
    if (line === "ready") {
      this.#ready?.();
      this.#ready = undefined;
      return;
    }
    if (line.startsWith("ev ")) {
      const [, kind, leg, a, b, hex] = line.split(" ");
      if (kind === "first") this.onFirst?.(Number(leg), Number(a));
      else if (kind === "dgram" && hex) this.onDatagram?.(Number(leg), Buffer.from(hex, "hex"), a!, Number(b));
      return;
    }
    const space = line.indexOf(" ");
    const id = Number(line.slice(0, space));
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    const rest = line.slice(space + 1);
    if (rest.startsWith("ok")) pending.resolve(rest.length > 3 ? JSON.parse(rest.slice(3)) : undefined);
    else pending.reject(new Error(`RTP engine: ${rest.replace(/^err /, "")}`));
  }

  /** Sends one command; resolves with its JSON answer (if any). */
  call<T = undefined>(verb: string, ...args: (string | number)[]): Promise<T> {
    if (this.#closed) return Promise.reject(new Error("the RTP engine is not running"));
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (json: unknown) => void, reject });
      this.#child.stdin!.write(`${[id, verb, ...args].join(" ")}\n`);
    });
  }

  close(): void {
    this.#child.stdin?.end();
  }
}
