/**
 * The deployment kit in deploy/ works as shipped. coturn (Debian's `turnserver`) starts from
 * deploy/coturn.conf with only its placeholders filled in and test-only listeners, accepts the
 * short-lived credentials Parley hands out (TURN REST API: username `expiry:userId`, password
 * base64(HMAC-SHA1(secret, username))) over TCP and TLS, refuses wrong or expired ones, and relays
 * to Parley's media address only. deploy/parley.service passes `systemd-analyze verify`, and its
 * ExecStart command line, run against the real CLI, starts a server that reloads its certificate on
 * the unit's reload signal and exits cleanly on its stop signal.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { generateSelfSigned, turnIceServers } from "@parley/server";
import { freeTcpPort, launchServerProcess, tempDir, waitFor } from "@parley/testkit";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const COTURN_CONF = path.join(ROOT, "deploy/coturn.conf");
const UNIT = path.join(ROOT, "deploy/parley.service");
const CLI = path.join(ROOT, "packages/cli/dist/main.js");

const TURNSERVER = ["/usr/bin/turnserver", "/usr/sbin/turnserver"].find((p) => fs.existsSync(p));
const SYSTEMD_ANALYZE = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].find((p) => fs.existsSync(p));

/** Parley's media address in the test: a documentation address no packet is ever sent to. */
const MEDIA_IP = "198.51.100.10";
const SECRET = "deploy kit test secret 0123456789";

// ---------------------------------------------------------------------------------------------
// A minimal TURN client (RFC 5766 / RFC 8656 over a stream): Allocate and CreatePermission with
// long-term credentials, enough to see what coturn grants and refuses.

const MAGIC = 0x2112a442;
const ALLOCATE = 0x0003;
const CREATE_PERMISSION = 0x0008;
const ATTR = {
  username: 0x0006,
  messageIntegrity: 0x0008,
  errorCode: 0x0009,
  xorPeerAddress: 0x0012,
  realm: 0x0014,
  nonce: 0x0015,
  xorRelayedAddress: 0x0016,
  requestedTransport: 0x0019,
} as const;

interface StunMessage {
  type: number;
  attributes: Map<number, Buffer>;
}

/** A request (with MESSAGE-INTEGRITY under `key` when given). */
function encodeStun(type: number, attributes: [number, Buffer][], key?: Buffer): Buffer {
  const body = Buffer.concat(
    attributes.map(([attrType, value]) => {
      const header = Buffer.alloc(4);
      header.writeUInt16BE(attrType, 0);
      header.writeUInt16BE(value.length, 2);
      return Buffer.concat([header, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
    }),
  );
  const header = Buffer.alloc(20);
  header.writeUInt16BE(type, 0);
  header.writeUInt32BE(MAGIC, 4);
  crypto.randomBytes(12).copy(header, 8);
  if (!key) {
    header.writeUInt16BE(body.length, 2);
    return Buffer.concat([header, body]);
  }
  // The integrity covers the message with its length already counting the 24-byte attribute.
  header.writeUInt16BE(body.length + 24, 2);
  const hmac = crypto
    .createHmac("sha1", key)
    .update(Buffer.concat([header, body]))
    .digest();
  const integrity = Buffer.alloc(4);
  integrity.writeUInt16BE(ATTR.messageIntegrity, 0);
  integrity.writeUInt16BE(20, 2);
  return Buffer.concat([header, body, integrity, hmac]);
}

function decodeStun(frame: Buffer): StunMessage {
  const attributes = new Map<number, Buffer>();
  let offset = 20;
  while (offset + 4 <= frame.length) {
    const type = frame.readUInt16BE(offset);
    const length = frame.readUInt16BE(offset + 2);
    if (!attributes.has(type)) attributes.set(type, frame.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length + ((4 - (length % 4)) % 4);
  }
  return { type: frame.readUInt16BE(0), attributes };
}

function xorAddress(ip: string, port: number): Buffer {
  const value = Buffer.alloc(8);
  value.writeUInt8(0x01, 1); // IPv4
  value.writeUInt16BE(port ^ (MAGIC >>> 16), 2);
  const octets = ip.split(".").map(Number);
  value.writeUInt32BE((((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) ^ MAGIC) >>> 0, 4);
  return value;
}

function readXorAddress(value: Buffer): string {
  const n = (value.readUInt32BE(4) ^ MAGIC) >>> 0;
  const port = value.readUInt16BE(2) ^ (MAGIC >>> 16);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}:${port}`;
}

/** The response's class: success, or the ERROR-CODE number (401, 403, ...). */
function outcome(message: StunMessage): "success" | number {
  if ((message.type & 0x0110) === 0x0100) return "success";
  const error = message.attributes.get(ATTR.errorCode);
  assert.ok(error, `an error response (type 0x${message.type.toString(16)}) carries ERROR-CODE`);
  return (error[2]! & 7) * 100 + error[3]!;
}

/** One TURN connection over TCP or TLS; requests are answered in order. */
class TurnConnection {
  #buffer = Buffer.alloc(0);
  #waiting: ((message: StunMessage) => void)[] = [];
  #realm: Buffer | undefined;
  #nonce: Buffer | undefined;
  #key: Buffer | undefined;
  #username: Buffer | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      while (this.#buffer.length >= 20 && this.#buffer.length >= 20 + this.#buffer.readUInt16BE(2)) {
        const length = 20 + this.#buffer.readUInt16BE(2);
        const frame = this.#buffer.subarray(0, length);
        this.#buffer = this.#buffer.subarray(length);
        this.#waiting.shift()?.(decodeStun(frame));
      }
    });
  }

  static async open(transport: "tcp" | "tls", port: number): Promise<TurnConnection> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s =
        transport === "tcp"
          ? net.connect(port, "127.0.0.1", () => resolve(s))
          : tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false }, () => resolve(s));
      s.once("error", reject);
    });
    return new TurnConnection(socket);
  }

  #send(type: number, attributes: [number, Buffer][], key?: Buffer): Promise<StunMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no TURN response to 0x${type.toString(16)}`)), 5000);
      this.#waiting.push((message) => {
        clearTimeout(timer);
        resolve(message);
      });
      this.socket.write(encodeStun(type, attributes, key));
    });
  }

  #credentials(): [number, Buffer][] {
    return [
      [ATTR.username, this.#username!],
      [ATTR.realm, this.#realm!],
      [ATTR.nonce, this.#nonce!],
    ];
  }

  /** Allocate a UDP relay with these credentials: the relayed address, or the error code. */
  async allocate(username: string, password: string): Promise<{ relayed: string } | { error: number }> {
    const transport: [number, Buffer] = [ATTR.requestedTransport, Buffer.from([17, 0, 0, 0])];
    const challenge = await this.#send(ALLOCATE, [transport]);
    assert.equal(outcome(challenge), 401, "an unauthenticated Allocate is challenged");
    this.#realm = challenge.attributes.get(ATTR.realm);
    this.#nonce = challenge.attributes.get(ATTR.nonce);
    assert.ok(this.#realm && this.#nonce, "the challenge names a realm and a nonce");
    this.#username = Buffer.from(username);
    this.#key = crypto.createHash("md5").update(`${username}:${this.#realm}:${password}`).digest();
    const reply = await this.#send(ALLOCATE, [transport, ...this.#credentials()], this.#key);
    const result = outcome(reply);
    if (result !== "success") return { error: result };
    const relayed = reply.attributes.get(ATTR.xorRelayedAddress);
    assert.ok(relayed, "a granted allocation names its relayed address");
    return { relayed: readXorAddress(relayed) };
  }

  /** Ask to relay to `peer` on the current allocation: success or the error code. */
  async permit(peer: string): Promise<"success" | number> {
    const reply = await this.#send(
      CREATE_PERMISSION,
      [[ATTR.xorPeerAddress, xorAddress(peer, 40000)], ...this.#credentials()],
      this.#key,
    );
    return outcome(reply);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The credentials Parley's server hands a user with --turn-secret (its own code), `ttlSeconds` from now. */
function parleyCredentials(secret: string, userId: number, ttlSeconds: number) {
  const [server] = turnIceServers({ urls: ["turns:parley.example:5349?transport=tcp"], secret, ttlSeconds }, userId);
  assert.ok(server?.username && server.credential);
  return { username: server.username, password: server.credential };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

// ---------------------------------------------------------------------------------------------

describe("deployment kit: deploy/coturn.conf", {
  skip: TURNSERVER ? false : "coturn is not installed (Debian package coturn; .ci/run installs it)",
}, () => {
  const dir = tempDir("parley-deploy-coturn-");
  let output = "";
  let child: ReturnType<typeof spawn> | undefined;
  let tcpPort = 0;
  let tlsPort = 0;
  const connections: TurnConnection[] = [];

  before(async () => {
    // What an operator edits: the placeholders. syslog has no command-line opposite, and the test
    // reads the log on stdout instead.
    const shipped = fs.readFileSync(COTURN_CONF, "utf8");
    assert.match(shipped, /^static-auth-secret=CHANGE_ME$/m);
    assert.match(shipped, /^allowed-peer-ip=CHANGE_ME$/m);
    const filled = shipped
      .replace(/^static-auth-secret=CHANGE_ME$/m, `static-auth-secret=${SECRET}`)
      .replace(/^allowed-peer-ip=CHANGE_ME$/m, `allowed-peer-ip=${MEDIA_IP}`)
      .replace(/^syslog$/m, "");
    assert.doesNotMatch(filled, /^[^#\n]*CHANGE_ME/m, "every placeholder is known to the test");
    fs.writeFileSync(path.join(dir, "turnserver.conf"), filled);
    const { cert, key } = await generateSelfSigned({ dns: ["localhost"], ips: ["127.0.0.1"] });
    fs.writeFileSync(path.join(dir, "cert.pem"), cert);
    fs.writeFileSync(path.join(dir, "key.pem"), key, { mode: 0o600 });
    tcpPort = await freeTcpPort();
    tlsPort = await freeTcpPort();
    // Test-only differences: loopback listeners on free ports, a temporary certificate, pid file
    // and database, the log on stdout.
    child = spawn(
      TURNSERVER!,
      [
        "-c",
        path.join(dir, "turnserver.conf"),
        "--listening-ip=127.0.0.1",
        `--listening-port=${tcpPort}`,
        `--tls-listening-port=${tlsPort}`,
        `--cert=${path.join(dir, "cert.pem")}`,
        `--pkey=${path.join(dir, "key.pem")}`,
        "--log-file=stdout",
        "--simple-log",
        `--pidfile=${path.join(dir, "turnserver.pid")}`,
        `--userdb=${path.join(dir, "turndb")}`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child.stdout!.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr!.on("data", (chunk) => {
      output += chunk;
    });
    await waitFor(
      async () => child!.exitCode === null && (await canConnect(tcpPort)) && (await canConnect(tlsPort)),
      "coturn listening on its TCP and TLS ports",
      { timeoutMs: 10_000 },
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${output}`);
    });
  });

  after(async () => {
    for (const c of connections) c.close();
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function open(transport: "tcp" | "tls") {
    const connection = await TurnConnection.open(transport, transport === "tcp" ? tcpPort : tlsPort);
    connections.push(connection);
    return connection;
  }

  it("starts from the shipped file without a configuration error and listens on TCP and TLS", async () => {
    assert.doesNotMatch(output, /ERROR/, output);
    assert.match(output, /Default realm: /);
    const version = await new Promise<string | null>((resolve, reject) => {
      const socket = tls.connect({ port: tlsPort, host: "127.0.0.1", rejectUnauthorized: false }, () => {
        resolve(socket.getProtocol());
        socket.destroy();
      });
      socket.once("error", reject);
    });
    assert.ok(version === "TLSv1.2" || version === "TLSv1.3", `TLS handshake on the turns: port (${version})`);
  });

  it("grants a relay over TCP and over TLS to the credentials Parley's server hands out", async () => {
    for (const transport of ["tcp", "tls"] as const) {
      const { username, password } = parleyCredentials(SECRET, 7, 3600);
      const result = await (await open(transport)).allocate(username, password);
      assert.ok("relayed" in result, `${transport}: ${JSON.stringify(result)}\n${output}`);
      assert.match(result.relayed, /^127\.0\.0\.1:5[01]\d{3}$/, "the relay port comes from min-port..max-port");
    }
  });

  it("refuses credentials signed with another secret, and expired ones", async () => {
    const forged = parleyCredentials("not the secret 0123456789", 7, 3600);
    assert.deepEqual(await (await open("tcp")).allocate(forged.username, forged.password), { error: 401 });
    const expired = parleyCredentials(SECRET, 7, -60);
    assert.deepEqual(await (await open("tcp")).allocate(expired.username, expired.password), { error: 401 });
  });

  it("relays to Parley's media address only: every other peer, private or public, is refused", async () => {
    const { username, password } = parleyCredentials(SECRET, 8, 3600);
    const turn = await open("tls");
    assert.ok("relayed" in (await turn.allocate(username, password)));
    assert.equal(await turn.permit(MEDIA_IP), "success");
    for (const peer of ["198.51.100.11", "10.0.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254", "8.8.8.8"]) {
      assert.equal(await turn.permit(peer), 403, `a permission for ${peer} is refused`);
    }
  });
});

// ---------------------------------------------------------------------------------------------

/** The unit's [Service] settings, each key with its values in order. */
function readUnit(): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  for (const raw of fs.readFileSync(UNIT, "utf8").split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith("[")) continue;
    const eq = line.indexOf("=");
    const key = line.slice(0, eq);
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1)]);
  }
  return settings;
}

function one(unit: Map<string, string[]>, key: string): string {
  const values = unit.get(key);
  assert.ok(values?.length === 1, `${key} is set once in deploy/parley.service`);
  return values[0]!;
}

describe("deployment kit: deploy/parley.service", () => {
  it("passes systemd-analyze verify without a warning", {
    skip: !SYSTEMD_ANALYZE
      ? "systemd-analyze is not installed"
      : !fs.existsSync("/usr/bin/node")
        ? "the unit runs /usr/bin/node, which this machine does not have"
        : false,
  }, () => {
    const result = spawnSync(SYSTEMD_ANALYZE!, ["verify", UNIT], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr.trim(), "", "no unknown key or bad value");
  });

  it("runs the server with flags the parley server command accepts, its data in /var/lib/parley", () => {
    const unit = readUnit();
    const words = one(unit, "ExecStart").split(/\s+/);
    assert.deepEqual(words.slice(0, 3), ["/usr/bin/node", "/opt/parley/packages/cli/dist/main.js", "server"]);
    const help = execFileSync(process.execPath, [CLI, "server", "--help"], { encoding: "utf8" });
    const known = new Set(help.match(/--[a-z][a-z-]*/g));
    const flags = words.filter((w) => w.startsWith("--"));
    assert.ok(flags.length > 0);
    for (const flag of flags) assert.ok(known.has(flag), `${flag} is a flag of parley server`);
    assert.equal(words[words.indexOf("--data-dir") + 1], "/var/lib/parley");
    assert.equal(one(unit, "StateDirectory"), "parley");
    assert.equal(one(unit, "WorkingDirectory"), "/opt/parley");
  });

  it("keeps what Node needs under the hardening: no MemoryDenyWriteExecute, netlink for the interface list", () => {
    const unit = readUnit();
    assert.equal(unit.has("MemoryDenyWriteExecute"), false, "V8's JIT needs writable executable memory");
    const families = one(unit, "RestrictAddressFamilies").split(/\s+/);
    for (const family of ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"]) assert.ok(families.includes(family), family);
    assert.equal(one(unit, "CapabilityBoundingSet"), "");
    assert.ok(Number(one(unit, "LimitNOFILE")) >= 65536, "a file descriptor per media socket and connection");
  });

  it("starts from its ExecStart line, reloads the certificate on the unit's reload signal and stops cleanly on its stop signal", async () => {
    const unit = readUnit();
    const reload = /^\/bin\/kill -(\w+) \$MAINPID$/.exec(one(unit, "ExecReload"));
    assert.ok(reload, "ExecReload signals the server's own process");
    const reloadSignal = `SIG${reload[1]}` as NodeJS.Signals;
    assert.equal(reloadSignal, "SIGHUP");
    const stopSignal = one(unit, "KillSignal") as NodeJS.Signals;

    // The ExecStart line with this checkout for /opt/parley and a temporary data dir; the rest as
    // an /etc/parley/parley.env would set it (here: loopback, any free port, a self-signed certificate).
    const dataDir = tempDir("parley-deploy-unit-");
    const [, ...args] = one(unit, "ExecStart")
      .split(/\s+/)
      .map((w) => w.replace("/opt/parley/", `${ROOT}/`).replace("/var/lib/parley", dataDir));
    const environment = Object.fromEntries(
      (unit.get("Environment") ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
    );
    const server = await launchServerProcess(process.execPath, args, {
      stdin: "ignore",
      env: {
        ...process.env,
        ...environment,
        PARLEY_HOST: "127.0.0.1",
        PARLEY_PORT: "0",
        PARLEY_MEDIA_IP: "127.0.0.1",
        PARLEY_SELF_SIGNED: "1",
      },
    });
    try {
      assert.match(server.httpUrl, /^https:/);
      assert.doesNotMatch(server.output(), /Operator console: type/, "no console on a service's stdin");
      server.child.kill(reloadSignal);
      await waitFor(() => /TLS certificate reloaded/.test(server.output()), "the reload in the log", {
        timeoutMs: 10_000,
      }).catch((error: Error) => {
        throw new Error(`${error.message}\n${server.output()}`);
      });
      assert.equal(server.child.exitCode, null, "the server goes on after a reload");
      server.child.kill(stopSignal);
      assert.equal(await server.exited, 0, "a stop is a clean exit, not a failure to restart");
    } finally {
      if (server.child.exitCode === null) server.child.kill("SIGKILL");
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
