/**
 * The bots reach the server the way users write its address: http(s)://host:port,
 * ws(s)://host:port/ws or host:port; wss checks the certificate (Node's CAs, plus --ca FILE), or
 * not with --insecure (and a warning). Without --bind, a bot leaves signaling to the system's
 * route and takes that route's local address for its media, which is what lets a bot on another
 * machine (here: a network namespace) call with just the server's address. Bad addresses and untrusted
 * certificates stop the bot with one clear line.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { BotExit, parseServerAddress, ServerAddressError } from "@parley/cli";
import {
  createNetworkLab,
  type LabHost,
  type NetworkLab,
  networkLabUnavailable,
  runParley,
  type ServerProcess,
  spawnServer,
  startTestServer,
  type TestServer,
  tempDir,
} from "@parley/testkit";
import { BOT_PASSWORD, useBotCalls } from "./bot-calls.js";

const PASSWORD = BOT_PASSWORD;
const { dir: folder, botCall, assertHears } = useBotCalls("parley-server-address-");

describe("parsing --server", () => {
  it("turns http:// into ws:// and https:// into wss://, with the path /ws", () => {
    assert.deepEqual(parseServerAddress("http://127.0.0.1:8080"), {
      url: "ws://127.0.0.1:8080/ws",
      host: "127.0.0.1",
      port: 8080,
      secure: false,
    });
    assert.deepEqual(parseServerAddress("https://parley.example:8443/"), {
      url: "wss://parley.example:8443/ws",
      host: "parley.example",
      port: 8443,
      secure: true,
    });
  });

  it("keeps ws:// and wss:// URLs as written, the path included", () => {
    assert.equal(parseServerAddress("ws://10.1.2.3:9000/ws").url, "ws://10.1.2.3:9000/ws");
    assert.equal(parseServerAddress("wss://parley.example:8443/ws").url, "wss://parley.example:8443/ws");
    assert.equal(parseServerAddress("wss://parley.example/parley/ws").url, "wss://parley.example/parley/ws");
    assert.equal(parseServerAddress("WS://Parley.Example:9000").url, "ws://parley.example:9000/ws");
  });

  it("reads host:port and a bare host as plain ws on port 8080 when no port is given", () => {
    assert.deepEqual(parseServerAddress("192.0.2.10:9000"), {
      url: "ws://192.0.2.10:9000/ws",
      host: "192.0.2.10",
      port: 9000,
      secure: false,
    });
    assert.equal(parseServerAddress("parley-box").url, "ws://parley-box:8080/ws");
    assert.equal(parseServerAddress("localhost").port, 8080);
  });

  it("takes the scheme's own port when a URL leaves it out, as a browser does", () => {
    assert.equal(parseServerAddress("https://parley.example").port, 443);
    assert.equal(parseServerAddress("http://parley.example").port, 80);
  });

  it("reads IPv6 addresses in brackets", () => {
    const address = parseServerAddress("[2001:db8::1]:8080");
    assert.equal(address.host, "2001:db8::1");
    assert.equal(address.url, "ws://[2001:db8::1]:8080/ws");
    assert.equal(parseServerAddress("https://[::1]:8443").url, "wss://[::1]:8443/ws");
  });

  it("refuses unknown schemes, bad ports and junk, naming the value and the accepted forms", () => {
    const cases: [string, RegExp][] = [
      ["ftp://parley.example:21", /unknown scheme ftp:\/\//],
      ["http://127.0.0.1:99999", /port "99999" is not 1-65535/],
      ["127.0.0.1:0", /port "0" is not 1-65535/],
      ["127.0.0.1:http", /port "http" is not 1-65535/],
      ["not a server", /not a host name or address/],
      ["http://", /host is missing/],
      ["", /empty/],
      ["::1", /IPv6 address goes in brackets/],
      ["[not-v6]:8080", /is not an IPv6 address/],
      ["http://alice:secret@parley.example", /user name or password/],
      ["http:/parley.example", /two slashes/],
      ["http://999.1.1.1:8080", /not a host name or address/],
    ];
    for (const [value, problem] of cases) {
      assert.throws(
        () => parseServerAddress(value),
        (error: unknown) => {
          assert.ok(error instanceof ServerAddressError, `${value}: ${error}`);
          assert.equal(error.code, "BAD_SERVER_ADDRESS");
          assert.match(error.message, problem, value);
          assert.ok(error.message.includes(`"${value}"`), `the message names ${value}: ${error.message}`);
          assert.match(error.message, /Accepted: http:\/\/host:port, https:\/\/host:port, ws:\/\/.*host:port/);
          return true;
        },
      );
    }
  });
});

describe("parley call and parley answer with a plain server address", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.stop();
  });

  it("call each other with --server http://127.0.0.1:PORT and 127.0.0.1:PORT, no --bind, and hear each other", async () => {
    const port = t.server.port;
    const bots = await botCall(
      { user: "plain-callee", hz: 440, server: `127.0.0.1:${port}` },
      { user: "plain-caller", hz: 1000, server: `http://127.0.0.1:${port}` },
    );
    assert.match(bots.caller.output(), /media from 127\.0\.0\.1 \(the route to 127\.0\.0\.1\)/);
    assertHears("plain-callee", 1000, bots);
    assertHears("plain-caller", 440, bots);
  });

  it("stop with one clear line and the usage exit code for an address they cannot read", async () => {
    for (const value of ["ftp://127.0.0.1:8080", "127.0.0.1:99999", "parley box"]) {
      const result = await runParley(["call", "--server", value, "--user", "a", "--password", "b", "--to", "c"]);
      assert.equal(result.code, BotExit.ERROR, result.stderr);
      const lines = result.stderr.trim().split("\n");
      assert.equal(lines.length, 1, result.stderr);
      assert.ok(lines[0]!.includes(`'${value}'`), `names ${value}: ${lines[0]}`);
      assert.match(lines[0]!, /Accepted: http:\/\/host:port, https:\/\/host:port, ws:\/\/host:port\/ws/);
    }
  });

  it("say the server refused the connection, naming its address, when nothing listens there", async () => {
    const result = await runParley(["answer", "--server", "127.0.0.1:1", "--user", "a", "--password", "b"]);
    assert.equal(result.code, BotExit.ERROR, result.stderr);
    assert.match(result.stderr, /cannot connect to ws:\/\/127\.0\.0\.1:1\/ws: connection refused \(ECONNREFUSED\)/);
    assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
  });
});

describe("parley call and parley answer over wss:// with a self-signed server", () => {
  let server: ServerProcess;
  let dataDir: string;
  let certFile: string;
  let port: number;
  before(async () => {
    dataDir = tempDir();
    server = await spawnServer(dataDir, ["--self-signed"]);
    certFile = path.join(dataDir, "tls-cert.pem");
    port = Number(new URL(server.httpUrl).port);
  });
  after(async () => {
    server.child.kill("SIGTERM");
    await server.exited;
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("call each other trusting the server's certificate with --ca, or with --insecure and a warning", async () => {
    const bots = await botCall(
      { user: "tls-callee", hz: 440, server: `wss://127.0.0.1:${port}/ws`, extra: ["--ca", certFile] },
      { user: "tls-caller", hz: 1000, server: `https://127.0.0.1:${port}`, extra: ["--insecure"] },
    );
    assert.match(bots.caller.output(), /warning: --insecure: the certificate of 127\.0\.0\.1 is not checked/);
    assert.doesNotMatch(bots.callee.output(), /warning/);
    assertHears("tls-callee", 1000, bots);
    assertHears("tls-caller", 440, bots);
  });

  it("refuse the self-signed certificate without --ca, saying so in one line with the connection-failure code", async () => {
    const result = await runParley([
      "answer",
      "--server",
      `https://127.0.0.1:${port}`,
      "--user",
      "tls-stranger",
      "--password",
      PASSWORD,
      "--register",
    ]);
    assert.equal(result.code, BotExit.ERROR, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `cannot connect to wss://127\\.0\\.0\\.1:${port}/ws: the server's certificate does not verify \\(self-signed certificate; DEPTH_ZERO_SELF_SIGNED_CERT\\)\\. Trust it with --ca FILE`,
      ),
    );
    assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
    assert.doesNotMatch(result.stderr, /registered|logged in/);
  });

  it("refuse the server with --ca naming another certificate", async () => {
    const otherDir = tempDir();
    const other = await spawnServer(otherDir, ["--self-signed"]);
    other.child.kill("SIGTERM");
    await other.exited;
    const result = await runParley([
      "answer",
      "--server",
      `wss://127.0.0.1:${port}/ws`,
      "--ca",
      path.join(otherDir, "tls-cert.pem"),
      "--user",
      "tls-stranger",
      "--password",
      PASSWORD,
      "--register",
    ]);
    fs.rmSync(otherDir, { recursive: true, force: true });
    assert.equal(result.code, BotExit.ERROR, result.stderr);
    assert.match(result.stderr, /the server's certificate does not verify/);
  });

  it("stop with a clear line when the --ca file cannot be read or holds no certificate", async () => {
    const missing = path.join(folder(), "no-such-cert.pem");
    const notPem = path.join(folder(), "not-a-cert.pem");
    fs.writeFileSync(notPem, "hello\n");
    for (const [file, problem] of [
      [missing, /cannot read .*no-such-cert\.pem \(ENOENT: no such file or directory\)/],
      [notPem, /not-a-cert\.pem holds no PEM certificate/],
    ] as const) {
      const result = await runParley([
        "answer",
        "--server",
        `wss://127.0.0.1:${port}/ws`,
        "--ca",
        file,
        "--user",
        "a",
        "--password",
        "b",
      ]);
      assert.equal(result.code, BotExit.ERROR, result.stderr);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
      assert.match(result.stderr, problem);
    }
  });
});

describe("a bot on another machine (a network namespace)", { skip: networkLabUnavailable() }, () => {
  let lab: NetworkLab;
  let remote: LabHost;
  let t: TestServer;
  before(async () => {
    lab = await createNetworkLab();
    remote = await lab.addHost("bot");
    t = await startTestServer({
      host: lab.hostAddress,
      media: { ip: lab.hostAddress, portMin: 40000, portMax: 49999 },
    });
  });
  after(async () => {
    await t?.stop();
    await lab?.close();
  });

  it("calls a bot on the server's machine with just --server ws://ADDRESS:PORT/ws, no --bind, and both hear each other", async () => {
    const server = `ws://${lab.hostAddress}:${t.server.port}/ws`;
    const bots = await botCall(
      { user: "lan-callee", hz: 440, server },
      { user: "lan-caller", hz: 1000, server, wrap: remote.wrap },
    );
    const route = lab.hostAddress.replaceAll(".", "\\.");
    assert.match(
      bots.caller.output(),
      new RegExp(`media from ${remote.address.replaceAll(".", "\\.")} \\(the route to ${route}\\)`),
    );
    assert.match(bots.callee.output(), new RegExp(`media from ${route} \\(the route to ${route}\\)`));
    assertHears("lan-callee", 1000, bots);
    assertHears("lan-caller", 440, bots);
  });
});
