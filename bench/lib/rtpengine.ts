/**
 * rtpengine (Sipwise's media proxy, Debian `rtpengine-daemon`) as a peer relay for the bench: one
 * throwaway daemon per ramp, in the foreground, logging to stderr (kept in memory for errors),
 * userspace forwarding only (`--table=-1`: no kernel module, which this machine does not have and
 * a like-for-like comparison with a userspace relay should not use), one worker thread
 * (`--num-threads=1`) and pinned to the relay core, so its figures are per core as Parley's are.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs";
import { NgClient } from "./ng-client.js";
import { sleep } from "./proc.js";

export const RTPENGINE_BINARY = process.env.BENCH_RTPENGINE ?? "/usr/bin/rtpengine";

/** The installed rtpengine's version line, or why it cannot run (then the bench skips it and says so). */
export function rtpengineAvailable(): { version: string } | { missing: string } {
  if (!fs.existsSync(RTPENGINE_BINARY)) {
    return { missing: `${RTPENGINE_BINARY} is not installed (Debian: apt-get install -y rtpengine-daemon)` };
  }
  try {
    // It prints "Version: 10.5.3.5-1+deb12u1" on stderr.
    const run = spawnSync(RTPENGINE_BINARY, ["--version"], { encoding: "utf8", timeout: 5000 });
    if (run.status !== 0) throw new Error(run.error?.message ?? `exit ${run.status}`);
    return { version: `${run.stdout}${run.stderr}`.trim().replace(/^Version:\s*/, "") };
  } catch (error) {
    return { missing: `${RTPENGINE_BINARY} --version failed: ${(error as Error).message}` };
  }
}

/** A UDP port free on 127.0.0.1 right now (for the ng control socket). */
async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = socket.address();
  socket.close();
  return port;
}

export interface RtpengineProcess {
  pid: number;
  version: string;
  /** The ng control address, for the load generators' NgClient. */
  ng: { host: string; port: number };
  /** The command line it was started with (recorded with the results). */
  args: string[];
  /** Its log so far (stderr), for diagnosing a failed call. */
  output(): string;
  stop(): Promise<number | null>;
}

/**
 * Starts rtpengine on 127.0.0.1 with media ports in `ports`, pinned to `pin` (taskset), and waits
 * until it answers an ng `ping`.
 */
export async function startRtpengine(options: {
  pin: string | undefined;
  ports: { min: number; max: number };
  threads?: number;
}): Promise<RtpengineProcess> {
  const available = rtpengineAvailable();
  if ("missing" in available) throw new Error(available.missing);
  const ngPort = await freeUdpPort();
  const args = [
    // Not the packaged /etc/rtpengine/rtpengine.conf: only what is given here.
    "--config-file=none",
    "--foreground",
    "--log-stderr",
    // 5 (notice): a line per call; BENCH_RTPENGINE_LOG_LEVEL=7 to see every ng exchange.
    `--log-level=${process.env.BENCH_RTPENGINE_LOG_LEVEL ?? 5}`,
    "--interface=127.0.0.1",
    `--listen-ng=127.0.0.1:${ngPort}`,
    `--port-min=${options.ports.min}`,
    `--port-max=${options.ports.max}`,
    `--num-threads=${options.threads ?? 1}`,
    // Media playback (announcements) is not used: no threads for it.
    "--media-num-threads=0",
    // Userspace forwarding only (a negative table: the kernel module is not used).
    "--table=-1",
    // A deleted call's ports are freed at once, not kept for 30 s.
    "--delete-delay=0",
    // For investigations, e.g. BENCH_RTPENGINE_ARGS="--log-level-ice=7 --log-level-crypto=7".
    ...(process.env.BENCH_RTPENGINE_ARGS?.split(" ").filter(Boolean) ?? []),
  ];
  const [cmd, argv] = options.pin
    ? ["taskset", ["-c", options.pin, RTPENGINE_BINARY, ...args]]
    : [RTPENGINE_BINARY, args];
  const child: ChildProcess = spawn(cmd, argv, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    log += chunk.toString();
    // Keep the tail only: a long ramp logs a line per call.
    if (log.length > 1_000_000) log = log.slice(-500_000);
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const ng = { host: "127.0.0.1", port: ngPort };
  const client = await NgClient.open(ng.host, ng.port);
  try {
    for (let attempt = 0; ; attempt++) {
      if (child.exitCode !== null) throw new Error(`rtpengine exited with ${child.exitCode}: ${log.slice(-2000)}`);
      try {
        await client.request("ping", {}, 500);
        break;
      } catch (error) {
        if (attempt > 40) throw new Error(`rtpengine did not answer ng ping: ${(error as Error).message}\n${log}`);
        await sleep(100);
      }
    }
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  } finally {
    client.close();
  }
  return {
    pid: child.pid!,
    version: available.version,
    ng,
    args: [RTPENGINE_BINARY, ...args],
    output: () => log,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
