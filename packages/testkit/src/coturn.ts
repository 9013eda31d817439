import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { generateSelfSigned } from "@parley/server";
import { freeTcpPort } from "./free-port.js";
import { tempDir } from "./test-server.js";

export { freeTcpPort };

/** Debian's coturn, the TURN server Parley's deployment kit ships a configuration for. */
export const TURNSERVER_PATH = "/usr/sbin/turnserver";

/** Why coturn cannot run here, or undefined when it can. */
export function coturnUnavailable(): string | undefined {
  return fs.existsSync(TURNSERVER_PATH) || fs.existsSync("/usr/bin/turnserver")
    ? undefined
    : "coturn is not installed (Debian package coturn; .ci/run installs it)";
}

export interface Coturn {
  /** `turn:` over TCP and `turns:` (TLS), for Parley's --turn-url. */
  urls: string[];
  secret: string;
  /** Everything coturn printed. */
  output(): string;
  stop(): Promise<void>;
}

export interface CoturnOptions {
  /** Where coturn listens for clients and from where it relays (e.g. a network lab's host address). */
  address: string;
  secret?: string;
}

/**
 * A throwaway coturn: TURN over TCP and TLS (a fresh self-signed certificate) on free ports of
 * `address`, relaying from the same address, with the REST-API shared secret Parley signs
 * credentials with. No UDP listener: the tests use it for clients whose UDP is blocked.
 */
export async function startCoturn(options: CoturnOptions): Promise<Coturn> {
  const dir = tempDir("parley-coturn-");
  const secret = options.secret ?? "coturn test secret 0123456789";
  const { cert, key } = await generateSelfSigned({ dns: ["localhost"], ips: [options.address] });
  fs.writeFileSync(path.join(dir, "cert.pem"), cert);
  fs.writeFileSync(path.join(dir, "key.pem"), key, { mode: 0o600 });
  const [tcpPort, tlsPort] = [await freeTcpPort(options.address), await freeTcpPort(options.address)];
  const binary = fs.existsSync(TURNSERVER_PATH) ? TURNSERVER_PATH : "/usr/bin/turnserver";
  const child: ChildProcess = spawn(
    binary,
    [
      "-n", // no configuration file: everything is on this command line
      `--listening-ip=${options.address}`,
      `--relay-ip=${options.address}`,
      `--listening-port=${tcpPort}`,
      `--tls-listening-port=${tlsPort}`,
      "--no-udp",
      "--no-dtls",
      "--use-auth-secret",
      `--static-auth-secret=${secret}`,
      "--realm=parley.test",
      `--cert=${path.join(dir, "cert.pem")}`,
      `--pkey=${path.join(dir, "key.pem")}`,
      "--no-cli",
      "--no-multicast-peers",
      "--fingerprint",
      "--log-file=stdout",
      "--simple-log",
      "--verbose",
      `--pidfile=${path.join(dir, "turnserver.pid")}`,
      `--userdb=${path.join(dir, "turndb")}`,
      "--min-port=50000",
      "--max-port=50999",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout!.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    output += chunk;
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(killer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForListener(
      options.address,
      tcpPort,
      () => child.exitCode !== null,
      () => output,
    );
    await waitForListener(
      options.address,
      tlsPort,
      () => child.exitCode !== null,
      () => output,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const host = options.address.includes(":") ? `[${options.address}]` : options.address;
  return {
    urls: [`turn:${host}:${tcpPort}?transport=tcp`, `turns:${host}:${tlsPort}?transport=tcp`],
    secret,
    output: () => output,
    stop,
  };
}

async function waitForListener(
  address: string,
  port: number,
  died: () => boolean,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (died()) throw new Error(`coturn exited:\n${output()}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, address, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`coturn did not listen on ${address}:${port}:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
