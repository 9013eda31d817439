/**
 * `GET /metrics`: Prometheus text from prom-client whose counters move as calls happen (two
 * `parley` bots talk through the relay), and the exposure modes: off, local (loopback only, no
 * proxied requests) and token.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { tone, writeWav } from "@parley/audio";
import { defaultMediaIp, startServer } from "@parley/server";
import {
  RawClient,
  registered,
  runBot,
  spawnServer,
  startTestServer,
  TEST_PASSWORD,
  type TestServer,
  tempDir,
  waitFor,
} from "@parley/testkit";

interface Scrape {
  status: number;
  body: string;
  contentType: string | undefined;
}

/** GET through node:http, so the local address and headers are ours to choose. */
function scrape(url: string, headers: Record<string, string> = {}, localAddress?: string): Promise<Scrape> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, ...(localAddress ? { localAddress } : {}) }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, contentType: res.headers["content-type"] }));
    });
    req.on("error", reject);
  });
}

/** The value of one sample (`name{labels} value`); labels must match exactly as listed; 0 when absent. */
function sample(body: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of body.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)) found[pair[1]!] = pair[2]!;
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return 0;
}

let t: TestServer;
let dir: string;
before(async () => {
  t = await startTestServer();
  dir = tempDir("parley-metrics-");
});
after(async () => {
  await t.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("GET /metrics", () => {
  it("serves Prometheus text with the process, event-loop and Parley metrics", async () => {
    const { status, body, contentType } = await scrape(`${t.server.httpUrl}/metrics`);
    assert.equal(status, 200);
    assert.match(contentType ?? "", /^text\/plain; version=0\.0\.4/);
    for (const name of [
      "process_cpu_user_seconds_total",
      "process_resident_memory_bytes",
      "nodejs_eventloop_lag_seconds",
      "parley_connected_users",
      "parley_active_calls",
      "parley_signaling_connections",
      "parley_relayed_packets_total",
      "parley_relayed_bytes_total",
      "parley_media_packets_lost",
    ]) {
      assert.match(body, new RegExp(`^# TYPE ${name} `, "m"), name);
    }
  });

  it("moves its counters as users connect, fail to log in, send bad requests and talk", async () => {
    const url = `${t.server.httpUrl}/metrics`;
    const before = (await scrape(url)).body;
    const watcher = await registered(t.url, "metrics-watcher");
    const failed = await RawClient.greeted(t.url);
    await failed.request("auth.login", { username: "metrics-watcher", password: "not the password" });
    await failed.request("no.such.request");
    failed.close();

    const file = path.join(dir, "tone.wav");
    writeWav(file, tone(440, 2));
    const common = (user: string) => [
      "--server",
      t.url,
      "--user",
      user,
      "--password",
      TEST_PASSWORD,
      "--register",
      "--play",
      file,
    ];
    const answer = runBot("answer", [...common("metrics-callee"), "--wait", "60"]);
    await waitFor(() => answer.output().includes("waiting for a call"), "callee waiting", { timeoutMs: 20_000 });
    const call = runBot("call", [...common("metrics-caller"), "--to", "metrics-callee", "--duration", "4"]);
    await waitFor(() => answer.output().includes("answered"), "call answered", { timeoutMs: 20_000 });
    // During the call: one active call, three users online, packets flowing through the relay.
    const during = await waitFor(
      async () => {
        const body = (await scrape(url)).body;
        return sample(body, "parley_relayed_packets_total") > sample(before, "parley_relayed_packets_total") + 20
          ? body
          : undefined;
      },
      "packets relayed",
      { timeoutMs: 10_000, intervalMs: 250 },
    );
    assert.equal(sample(during, "parley_active_calls", { state: "active" }), 1);
    assert.equal(sample(during, "parley_connected_users"), 3);
    assert.equal(sample(during, "parley_media_legs"), 2);
    assert.deepEqual([await call.exited, await answer.exited], [0, 0], call.output() + answer.output());

    const after = (await scrape(url)).body;
    const moved = (name: string, labels: Record<string, string> = {}) =>
      sample(after, name, labels) - sample(before, name, labels);
    assert.equal(moved("parley_calls_total", { outcome: "answered", reason: "hangup" }), 1);
    assert.equal(sample(after, "parley_active_calls", { state: "active" }), 0);
    assert.equal(moved("parley_failed_logins_total", { reason: "wrong_password" }), 1);
    assert.equal(moved("parley_signaling_errors_total", { code: "UNKNOWN_TYPE" }), 1);
    assert.equal(moved("parley_signaling_errors_total", { code: "INVALID_CREDENTIALS" }), 1);
    assert.ok(moved("parley_signaling_requests_total", { type: "call.invite" }) >= 1);
    assert.ok(moved("parley_signaling_requests_total", { type: "call.media" }) >= 2);
    assert.ok(moved("parley_relayed_packets_total") > 100, `relayed ${moved("parley_relayed_packets_total")}`);
    assert.ok(moved("parley_relayed_bytes_total") > moved("parley_relayed_packets_total"));
    assert.ok(moved("parley_signaling_messages_total", { direction: "in" }) > 5);
    watcher.client.close();
  });
});

describe("metrics exposure", () => {
  it("local (the default): loopback clients only, and never a proxied request", async () => {
    const lan = defaultMediaIp();
    const s = await startTestServer({ host: "0.0.0.0" });
    try {
      assert.equal((await scrape(`http://127.0.0.1:${s.server.port}/metrics`)).status, 200);
      const proxied = await scrape(`http://127.0.0.1:${s.server.port}/metrics`, { "x-forwarded-for": "203.0.113.5" });
      assert.deepEqual([proxied.status, JSON.parse(proxied.body)], [403, { error: "METRICS_LOCAL_ONLY" }]);
      const forwarded = await scrape(`http://127.0.0.1:${s.server.port}/metrics`, { forwarded: "for=203.0.113.5" });
      assert.equal(forwarded.status, 403);
      if (lan === "127.0.0.1") {
        console.log("no non-loopback address on this machine: the LAN refusal is not exercised");
      } else {
        // From the machine's LAN address, which is not loopback.
        const remote = await scrape(`http://${lan}:${s.server.port}/metrics`, {}, lan);
        assert.equal(remote.status, 403);
        assert.doesNotMatch(remote.body, /parley_/);
        assert.equal((await scrape(`http://${lan}:${s.server.port}/healthz`, {}, lan)).status, 200);
      }
    } finally {
      await s.stop();
    }
  });

  it("token: a bearer token is required, from anywhere; off: no endpoint", async () => {
    const token = "metrics-token-0123456789";
    const s = await startTestServer({ metrics: { exposure: "token", token } });
    try {
      const url = `${s.server.httpUrl}/metrics`;
      const none = await scrape(url);
      assert.deepEqual([none.status, JSON.parse(none.body)], [401, { error: "METRICS_TOKEN_REQUIRED" }]);
      assert.equal((await scrape(url, { authorization: "Bearer wrong-token-0123456789" })).status, 401);
      assert.equal((await scrape(url, { authorization: token })).status, 401);
      const ok = await scrape(url, { authorization: `Bearer ${token}` });
      assert.equal(ok.status, 200);
      assert.match(ok.body, /parley_connected_users/);
    } finally {
      await s.stop();
    }
    const off = await startTestServer({ metrics: { exposure: "off" } });
    try {
      assert.equal((await scrape(`${off.server.httpUrl}/metrics`)).status, 404);
    } finally {
      await off.stop();
    }
    const empty = tempDir();
    await assert.rejects(
      startServer({ dataDir: empty, port: 0, logToStdout: false, metrics: { exposure: "token", token: "short" } }),
      /metrics-token/,
    );
    fs.rmSync(empty, { recursive: true, force: true });
  });

  it("parley server --metrics token reads the token from PARLEY_METRICS_TOKEN or --metrics-token", async () => {
    const data = tempDir();
    const token = "from-the-command-line-123";
    const proc = await spawnServer(data, ["--metrics", "token", "--metrics-token", token]);
    try {
      assert.equal((await scrape(`${proc.httpUrl}/metrics`)).status, 401);
      assert.equal((await scrape(`${proc.httpUrl}/metrics`, { authorization: `Bearer ${token}` })).status, 200);
    } finally {
      proc.child.kill("SIGTERM");
      await proc.exited;
      fs.rmSync(data, { recursive: true, force: true });
    }
    await assert.rejects(spawnServer(tempDir(), ["--metrics", "token"]), /metrics-token/);
  });
});
