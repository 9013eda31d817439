/**
 * Trusted reverse proxies: only when the TCP peer is one named by --trust-proxy are
 * `X-Forwarded-For` and `Forwarded` read, walked from the right to the first address that is not a
 * trusted proxy. That address is the client's everywhere: operator views, audit log, login
 * limits, connection caps. Anyone else's headers are ignored, so they cannot spoof an address;
 * /metrics `local` still judges the real peer.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { CloseCode } from "@parley/protocol";
import { DEFAULT_CONFIG, resolveConfig } from "@parley/server";
import {
  type ConnectOptions,
  launchServerProcess,
  RawClient,
  runAdmin,
  serverProcessArgs,
  spawnServer,
  startTestServer,
  TEST_PASSWORD,
  type TestServer,
  tempDir,
  waitFor,
} from "@parley/testkit";

let counter = 0;

/** Registers a fresh user over a connection made with `options`; returns the client and the name. */
async function registerVia(url: string, options: ConnectOptions): Promise<{ client: RawClient; username: string }> {
  const username = `user${++counter}`;
  const client = await RawClient.greeted(url, options);
  await client.call("auth.register", { username, password: TEST_PASSWORD });
  return { client, username };
}

/** The address the operator sees for `username`'s device, and the address of its `register` audit entry. */
async function seenAs(t: TestServer, username: string): Promise<{ who: string; audit: string | null }> {
  const user = (await t.server.operator.users()).find((u) => u.username === username);
  assert.ok(user, `${username} listed`);
  const device = user.devices[0];
  assert.ok(device, `${username} has a device`);
  const who = (await t.server.commands.run(["who"])).output;
  const row = who.split("\n").find((line) => line.includes(` ${username} `));
  assert.ok(row?.includes(` ${device.address} `), `who shows ${device.address} for ${username}: ${who}`);
  const [entry] = await t.server.operator.audit({ username, action: "register" });
  return { who: device.address, audit: entry?.address ?? null };
}

function get(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      })
      .on("error", reject);
  });
}

describe("behind a trusted proxy (--trust-proxy 127.0.0.1)", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({
      trustProxy: ["127.0.0.1"],
      loginLimits: { ...DEFAULT_CONFIG.loginLimits, perAddress: 3 },
    });
  });
  after(() => t.stop());

  it("sees the client named by X-Forwarded-For in who, the operator views and the audit log", async () => {
    const { client, username } = await registerVia(t.url, { headers: { "X-Forwarded-For": "198.51.100.7" } });
    assert.deepEqual(await seenAs(t, username), { who: "198.51.100.7", audit: "198.51.100.7" });
    client.close();
  });

  it("sees the client named by Forwarded: for=", async () => {
    const { client, username } = await registerVia(t.url, { headers: { Forwarded: "for=198.51.100.8;proto=http" } });
    assert.deepEqual(await seenAs(t, username), { who: "198.51.100.8", audit: "198.51.100.8" });
    client.close();
  });

  it("reads an IPv6 client with a port from Forwarded", async () => {
    const { client, username } = await registerVia(t.url, { headers: { Forwarded: 'for="[2001:DB8::17]:4711"' } });
    assert.equal((await seenAs(t, username)).who, "2001:db8::17");
    client.close();
  });

  it("takes the right-most address of a chain that is not a trusted proxy, not what the client wrote on the left", async () => {
    const a = await registerVia(t.url, { headers: { "X-Forwarded-For": "203.0.113.9, 198.51.100.7" } });
    assert.equal((await seenAs(t, a.username)).who, "198.51.100.7");
    // A trusted hop in the chain is walked past.
    const b = await registerVia(t.url, { headers: { "X-Forwarded-For": "203.0.113.9, 198.51.100.9, 127.0.0.1" } });
    assert.equal((await seenAs(t, b.username)).who, "198.51.100.9");
    const c = await registerVia(t.url, { headers: { Forwarded: "for=203.0.113.9, for=198.51.100.10" } });
    assert.equal((await seenAs(t, c.username)).who, "198.51.100.10");
    for (const { client } of [a, b, c]) client.close();
  });

  it("believes neither header when X-Forwarded-For and Forwarded name different clients", async () => {
    // A proxy that sets one header passes the other one through from the client untouched.
    const { client, username } = await registerVia(t.url, {
      headers: { "X-Forwarded-For": "198.51.100.7", Forwarded: "for=203.0.113.66" },
    });
    assert.equal((await seenAs(t, username)).who, "127.0.0.1");
    client.close();
  });

  it("ignores the headers of a peer that is not a trusted proxy, so it cannot spoof an address", async () => {
    const { client, username } = await registerVia(t.url, {
      localAddress: "127.0.0.2",
      headers: { "X-Forwarded-For": "198.51.100.7", Forwarded: "for=198.51.100.7" },
    });
    assert.deepEqual(await seenAs(t, username), { who: "127.0.0.2", audit: "127.0.0.2" });
    client.close();
  });

  it("limits failed logins by the forwarded address, so one client's guesses do not lock out the others behind the proxy", async () => {
    const { client: owner, username } = await registerVia(t.url, { headers: { "X-Forwarded-For": "198.51.100.30" } });
    owner.close();
    const attacker = await RawClient.greeted(t.url, { headers: { "X-Forwarded-For": "198.51.100.66" } });
    const codes: string[] = [];
    for (let i = 0; i < 4; i++) {
      const reply = await attacker.request("auth.login", { username: `nobody${i}`, password: "wrong password!" });
      if (!reply.ok) codes.push(reply.error.code);
    }
    assert.equal(codes.at(-1), "TOO_MANY_ATTEMPTS", codes.join(","));
    // Behind the same proxy (same TCP peer), another client still logs in.
    const real = await RawClient.greeted(t.url, { headers: { "X-Forwarded-For": "198.51.100.30" } });
    const reply = await real.request("auth.login", { username, password: TEST_PASSWORD });
    assert.equal(reply.ok, true, JSON.stringify(reply));
    const [refused] = await t.server.operator.audit({ action: "login_failed" });
    assert.equal(refused?.address, "198.51.100.66");
    attacker.close();
    real.close();
  });

  it("keeps /metrics local-only by the real peer: a proxied request from a remote client is not local", async () => {
    assert.equal(await get(`${t.server.httpUrl}/metrics`), 200);
    assert.equal(await get(`${t.server.httpUrl}/metrics`, { "X-Forwarded-For": "198.51.100.7" }), 403);
    assert.equal(await get(`${t.server.httpUrl}/metrics`, { Forwarded: "for=198.51.100.7" }), 403);
  });
});

describe("per-address connection caps behind a trusted proxy", () => {
  it("counts each forwarded client on its own: two clients behind one proxy do not share a cap", async () => {
    const t = await startTestServer({
      trustProxy: ["127.0.0.1"],
      connectionLimits: { ...DEFAULT_CONFIG.connectionLimits, perAddress: 3 },
    });
    try {
      const first = { headers: { "X-Forwarded-For": "198.51.100.20" } };
      const open = await Promise.all([1, 2, 3].map(() => RawClient.greeted(t.url, first)));
      const fourth = await RawClient.connect(t.url, first);
      assert.equal((await fourth.closed).code, CloseCode.TOO_MANY_CONNECTIONS);
      // Another client behind the same proxy, and the proxy's own address, still get in.
      const other = await RawClient.greeted(t.url, { headers: { "X-Forwarded-For": "198.51.100.21" } });
      const direct = await RawClient.greeted(t.url);
      assert.deepEqual(
        (await t.server.operator.audit({ action: "connection_refused" })).map((e) => [e.address, e.detail?.reason]),
        [["198.51.100.20", "per_address"]],
      );
      for (const client of [...open, other, direct]) client.close();
    } finally {
      await t.stop();
    }
  });
});

describe("IPv4-mapped IPv6 peers", () => {
  it("matches ::ffff:127.0.0.1 against a trusted 127.0.0.1 and records plain IPv4 addresses", async () => {
    // Listening on :: makes IPv4 peers appear as ::ffff:a.b.c.d.
    const t = await startTestServer({ host: "::", trustProxy: ["127.0.0.1"] });
    try {
      const url = `ws://127.0.0.1:${t.server.port}/ws`;
      const proxied = await registerVia(url, { headers: { "X-Forwarded-For": "::ffff:198.51.100.40" } });
      assert.equal((await seenAs(t, proxied.username)).who, "198.51.100.40");
      const direct = await registerVia(url, { localAddress: "127.0.0.2" });
      assert.equal((await seenAs(t, direct.username)).who, "127.0.0.2");
      proxied.client.close();
      direct.client.close();
    } finally {
      await t.stop();
    }
  });
});

describe("without --trust-proxy", () => {
  it("ignores X-Forwarded-For and Forwarded entirely: the TCP peer is the client", async () => {
    const t = await startTestServer();
    try {
      const { client, username } = await registerVia(t.url, {
        headers: { "X-Forwarded-For": "198.51.100.7", Forwarded: "for=198.51.100.8" },
      });
      assert.deepEqual(await seenAs(t, username), { who: "127.0.0.1", audit: "127.0.0.1" });
      client.close();
    } finally {
      await t.stop();
    }
  });
});

describe("--trust-proxy on the command line", () => {
  let dir: string;
  before(() => {
    dir = tempDir("parley-trust-proxy-");
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("refuses to start with an entry that is not an address or CIDR range, and says which", async () => {
    assert.throws(() => resolveConfig({ trustProxy: ["10.0.0.0/33"] }), /--trust-proxy: '10\.0\.0\.0\/33' is not/);
    await assert.rejects(
      spawnServer(dir, ["--trust-proxy", "127.0.0.1, proxy.example"]),
      /cannot start: --trust-proxy: 'proxy\.example' is not an IP address or CIDR range/,
    );
  });

  it("takes the trusted proxies from PARLEY_TRUST_PROXY", async () => {
    const server = await launchServerProcess(process.execPath, serverProcessArgs(dir), {
      env: { ...process.env, PARLEY_TRUST_PROXY: "10.0.0.0/8,127.0.0.0/8" },
    });
    try {
      const { client, username } = await registerVia(server.url, { headers: { "X-Forwarded-For": "198.51.100.50" } });
      const who = await waitFor(async () => {
        const result = await runAdmin(dir, ["who"]);
        return result.stdout.includes(username) ? result.stdout : undefined;
      }, "the user listed by parley admin who");
      assert.match(who, new RegExp(`${username}.*198\\.51\\.100\\.50`));
      client.close();
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  });
});
