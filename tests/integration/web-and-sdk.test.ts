import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { ConnectionState } from "@parley/client";
import {
  registered,
  sdkClient,
  startTestServer,
  TEST_PASSWORD,
  type TestServer,
  tempDir,
  WEB_ROOT,
  waitFor,
} from "@parley/testkit";

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

/** A raw HTTP GET (fetch would normalise away the dot segments we want to send). */
function rawGet(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    });
    let data = "";
    socket.on("data", (chunk) => {
      data += chunk;
    });
    socket.on("error", reject);
    socket.on("end", () => resolve({ status: Number(data.split(" ")[1]), body: data }));
  });
}

describe("web client serving", () => {
  it("serves the built web client at / and its assets with the right types", async () => {
    const page = await fetch(`${t.server.httpUrl}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
    const html = await page.text();
    assert.match(html, /<div id="root">/);
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(script, "index.html references a script");
    const js = await fetch(`${t.server.httpUrl}${script}`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type") ?? "", /javascript/);
    assert.match(js.headers.get("cache-control") ?? "", /immutable/);
  });

  it("answers client-side routes with the app, and unknown files with 404", async () => {
    const route = await fetch(`${t.server.httpUrl}/admin`);
    assert.equal(route.status, 200);
    assert.match(await route.text(), /<div id="root">/);
    assert.equal((await fetch(`${t.server.httpUrl}/missing.js`)).status, 404);
    const health = await fetch(`${t.server.httpUrl}/healthz`);
    assert.equal(((await health.json()) as { status: string }).status, "ok");
  });

  it("never serves a file outside the web root", async () => {
    assert.ok(fs.existsSync(path.join(WEB_ROOT, "..", "package.json")));
    for (const target of [
      "/../package.json",
      "/%2e%2e/package.json",
      "/assets/../../package.json",
      "/..%2fpackage.json",
    ]) {
      const reply = await rawGet(t.server.port, target);
      assert.ok(!reply.body.includes('"name": "@parley/web"'), `${target} leaked a file outside the root`);
    }
  });
});

describe("client SDK reconnection", () => {
  it("reconnects after the server restarts and resumes the session and the directory", async () => {
    const dataDir = tempDir();
    const first = await startTestServer({ dataDir });
    const port = first.server.port;
    const sdk = sdkClient(first.url, { reconnect: true });
    const states: ConnectionState[] = [];
    sdk.on("connection", (state) => states.push(state));
    await sdk.connect();
    await sdk.register({ username: "phoenix", password: TEST_PASSWORD });
    await first.server.close();
    await waitFor(() => states.includes("reconnecting"), "reconnecting");
    const second = await startTestServer({ dataDir, port });
    try {
      await waitFor(() => sdk.connectionState === "connected" && sdk.self?.username === "phoenix", "resumed", {
        timeoutMs: 10_000,
      });
      assert.ok(sdk.directory.some((u) => u.username === "phoenix" && u.status === "available"));
      const peer = await registered(second.url, "phoenix-peer");
      await waitFor(() => sdk.directory.some((u) => u.username === "phoenix-peer"), "live events again");
      peer.client.close();
    } finally {
      sdk.disconnect();
      await second.stop();
    }
  });

  it("does not reconnect after the operator kicks the user", async () => {
    const sdk = sdkClient(t.url, { reconnect: true });
    await sdk.connect();
    await sdk.register({ username: "kicked-once", password: TEST_PASSWORD });
    await t.server.commands.run(["kick", "kicked-once"]);
    await waitFor(() => sdk.connectionState === "disconnected", "disconnected");
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(sdk.connectionState, "disconnected");
  });
});
