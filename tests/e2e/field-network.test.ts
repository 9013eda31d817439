/**
 * The softphone on a real network: browsers on other machines (network namespaces with their own
 * addresses, not loopback) open the server over HTTPS with its self-signed certificate, register,
 * call and hear each other. A machine whose network drops all UDP still gets two-way audio through
 * coturn over TCP, and its call quality says so; without TURN it gets a clear "audio connection
 * failed", not silence. A certificate reload during a call leaves the call alone. No page ever
 * receives another machine's address.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { generateSelfSigned } from "@parley/server";
import {
  type BrowserUser,
  type Coturn,
  coturnUnavailable,
  createNetworkLab,
  type LabHost,
  launchBrowserUser,
  type NetworkLab,
  networkLabUnavailable,
  RawClient,
  startCoturn,
  startTestServer,
  type TestServer,
  tempDir,
  toneWav,
  waitFor,
  waitForReceivedAudio,
} from "@parley/testkit";
import type { Page } from "playwright-core";
import {
  answerAndHearEachOther,
  button,
  callButton,
  expectAttribute,
  expectEndNotice,
  incomingDialog,
  isTone,
  type Person,
  registerThroughUi,
} from "./helpers.js";

const ANN: Person = { username: "ann", displayName: "Ann Field" };
const BOB: Person = { username: "bob", displayName: "Bob Field" };
const CARL: Person = { username: "carl", displayName: "Carl Firewalled" };
const HZ = { ann: 440, bob: 1000, carl: 700 };
const TURN_SECRET = "field network turn secret 42";

const skip = networkLabUnavailable() ?? coturnUnavailable();

describe("the softphone from other machines of the network", { skip, timeout: 240_000 }, () => {
  let lab: NetworkLab;
  let coturn: Coturn;
  let server: TestServer;
  let dir: string;
  let hosts: Record<"ann" | "bob" | "carl", LabHost>;
  const browsers: BrowserUser[] = [];
  /** Every WebSocket message each page received, to check that no other machine's address is in one. */
  const received = new Map<Page, string[]>();

  async function browserOn(host: LabHost, hz: number): Promise<Page> {
    const user = await launchBrowserUser(toneWav(dir, hz), {
      executablePath: host.chromiumPath,
      args: ["--ignore-certificate-errors"],
    });
    browsers.push(user);
    const frames: string[] = [];
    received.set(user.page, frames);
    user.page.on("websocket", (ws) => ws.on("framereceived", ({ payload }) => frames.push(String(payload))));
    return user.page;
  }

  /** The SHA-256 fingerprint of the certificate a new TLS connection to the server gets. */
  function serverFingerprint(): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect(
        { host: lab.hostAddress, port: Number(new URL(server.server.httpUrl).port), rejectUnauthorized: false },
        () => {
          resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? "");
          socket.destroy();
        },
      );
      socket.on("error", reject);
    });
  }

  before(async () => {
    lab = await createNetworkLab();
    hosts = { ann: await lab.addHost("ann"), bob: await lab.addHost("bob"), carl: await lab.addHost("carl") };
    coturn = await startCoturn({ address: lab.hostAddress, secret: TURN_SECRET });
    server = await startTestServer({
      host: lab.hostAddress,
      media: { ip: lab.hostAddress, portMin: 40000, portMax: 49999 },
      tls: { selfSigned: true },
      turn: { urls: coturn.urls, secret: TURN_SECRET, ttlSeconds: 3600 },
    });
    dir = tempDir("parley-field-");
  });

  after(async () => {
    for (const user of browsers) {
      if (user.problems.length) console.log(`a browser reported:\n  ${user.problems.join("\n  ")}`);
    }
    await Promise.all(browsers.map((user) => user.close()));
    await server?.stop();
    await coturn?.stop();
    await lab?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("over HTTPS, two machines register, call each other and each hears the other's tone", async () => {
    assert.match(server.server.httpUrl, /^https:\/\/198\.51\.100\.\d+:\d+$/);
    const [ann, bob] = [await browserOn(hosts.ann, HZ.ann), await browserOn(hosts.bob, HZ.bob)];
    await registerThroughUi(ann, server.server.httpUrl, ANN);
    await registerThroughUi(bob, server.server.httpUrl, BOB);
    await callButton(ann, BOB.displayName).click();
    await answerAndHearEachOther(
      incomingDialog(bob),
      { page: ann, name: "Ann", hz: HZ.ann },
      { page: bob, name: "Bob", hz: HZ.bob },
    );
    await expectAttribute(ann.getByTestId("call-quality"), "data-path", "direct", 15_000);
    await button(ann, "Hang up").click();
    await expectEndNotice(ann, "Call ended");
  });

  it("from a network that drops all UDP, the call goes through coturn over TCP with two-way audio", async () => {
    await hosts.carl.block({ udp: true });
    const ann = browsers[0]!.page;
    const carl = await browserOn(hosts.carl, HZ.carl);
    await registerThroughUi(carl, server.server.httpUrl, CARL);
    await callButton(carl, ANN.displayName).click();
    await answerAndHearEachOther(
      incomingDialog(ann),
      { page: carl, name: "Carl", hz: HZ.carl },
      { page: ann, name: "Ann", hz: HZ.ann },
    );
    // Carl's browser says its audio goes through the TURN relay; Ann's goes directly.
    await expectAttribute(carl.getByTestId("call-quality"), "data-path", "turn", 15_000);
    assert.match(await carl.getByTestId("call-quality").innerText(), /through a TURN relay \(TCP\)/);
    await expectAttribute(ann.getByTestId("call-quality"), "data-path", "direct", 15_000);
  });

  it("goes on through a certificate reload (SIGHUP) during the call, and new connections get the new certificate", async () => {
    const [ann, carl] = [browsers[0]!.page, browsers[2]!.page];
    const before = await serverFingerprint();
    const { cert, key } = await generateSelfSigned({ dns: ["localhost"], ips: [lab.hostAddress] });
    fs.writeFileSync(path.join(server.dataDir, "tls-cert.pem"), cert);
    fs.writeFileSync(path.join(server.dataDir, "tls-key.pem"), key, { mode: 0o600 });
    process.kill(process.pid, "SIGHUP");
    const expected = new X509Certificate(cert).fingerprint256;
    await waitFor(async () => (await serverFingerprint()) === expected, "new connections get the new certificate");
    assert.notEqual(before, expected);
    // The call and its signaling went on: both still hear each other, and hanging up still works.
    await Promise.all([
      waitForReceivedAudio(carl, isTone(HZ.ann), "Carl hearing Ann after the reload", { seconds: 1 }),
      waitForReceivedAudio(ann, isTone(HZ.carl), "Ann hearing Carl after the reload", { seconds: 1 }),
    ]);
    await button(carl, "Hang up").click();
    await expectEndNotice(carl, "Call ended");
    await expectEndNotice(ann, "Call ended");
  });

  it("never sends a page another machine's address, TURN or not", () => {
    for (const [page, frames] of received) {
      const own = browsers.find((b) => b.page === page);
      assert.ok(own);
      for (const host of Object.values(hosts)) {
        // The server answers with its own candidates only, so no frame carries any machine's address.
        const address = new RegExp(`(?<![\\d.])${host.address.replaceAll(".", "\\.")}(?!\\d)`);
        const leaks = frames.filter((frame) => address.test(frame));
        assert.deepEqual(leaks, [], `a page received ${host.name}'s address ${host.address}`);
      }
      assert.ok(frames.length > 10, "the page's signaling was watched");
    }
  });

  it("without TURN, the firewalled machine's call ends with a clear audio failure instead of silence", async () => {
    const plain = await startTestServer({
      host: lab.hostAddress,
      media: { ip: lab.hostAddress, portMin: 40000, portMax: 49999 },
      tls: { selfSigned: true },
    });
    try {
      const carl = await browserOn(hosts.carl, HZ.carl);
      await registerThroughUi(carl, plain.server.httpUrl, CARL);
      // The callee is online on this machine (signaling only); Carl's own leg is what fails.
      const dora = await RawClient.greeted(plain.url, {
        ca: fs.readFileSync(path.join(plain.dataDir, "tls-cert.pem")),
      });
      await dora.call("auth.register", { username: "dora", password: "dora password 1", displayName: "Dora" });
      await callButton(carl, "Dora").click();
      await expectEndNotice(carl, "The audio connection failed", 60_000);
      dora.close();
    } finally {
      await plain.stop();
    }
  });
});
