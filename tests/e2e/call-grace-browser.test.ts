/**
 * The softphone keeps a call through a lost signaling connection: a Chromium on another machine (a
 * network namespace) loses its TCP to the server for 10 s mid-call (nft drops it; the call's media is
 * UDP and goes on). The other side's page says the peer is reconnecting and keeps hearing its tone,
 * second after second; once the network is back the page reconnects by itself, takes the call back,
 * the note goes away, both hear each other and hanging up works. A cut longer than the server's
 * grace period ends the call on both pages with "Connection lost".
 *
 * Chromium's WebSocket in the namespace notices the drop only once packets flow again (the server's
 * FIN, sent when its 2 s heartbeat gave up, arrives after the cut); the server notices by heartbeat.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  type BrowserUser,
  createNetworkLab,
  type LabHost,
  launchBrowserUser,
  type NetworkLab,
  networkLabUnavailable,
  type ReceivedAudio,
  receivedAudio,
  startTestServer,
  type TestServer,
  tempDir,
  toneWav,
  waitForReceivedAudio,
} from "@parley/testkit";
import type { Page, WebSocket } from "playwright-core";
import {
  answerAndHearEachOther,
  button,
  callButton,
  describeAudio,
  expectConnected,
  expectEndNotice,
  expectGone,
  expectVisible,
  incomingDialog,
  isTone,
  type Person,
  registerThroughUi,
} from "./helpers.js";

const ANN: Person = { username: "ann", displayName: "Ann Desk" };
const BOB: Person = { username: "bob", displayName: "Bob Roaming" };
const HZ = { ann: 440, bob: 1000 };
const CUT_MS = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a softphone call whose signaling connection drops", {
  skip: networkLabUnavailable(),
  timeout: 240_000,
}, () => {
  let lab: NetworkLab;
  let roaming: LabHost;
  let dir: string;
  const browsers: BrowserUser[] = [];
  const servers: TestServer[] = [];
  /** Ann's browser runs on this machine, Bob's in the namespace whose TCP the tests cut. */
  let ann: Page;
  let bob: Page;
  /** Every WebSocket Bob's page opened, in order. */
  const bobSockets: { socket: WebSocket; openedAt: number; closedAt?: number }[] = [];

  before(async () => {
    lab = await createNetworkLab();
    roaming = await lab.addHost("roaming");
    dir = tempDir("parley-call-grace-browser-");
    const args = ["--ignore-certificate-errors"];
    browsers.push(await launchBrowserUser(toneWav(dir, HZ.ann), { args }));
    browsers.push(await launchBrowserUser(toneWav(dir, HZ.bob), { args, executablePath: roaming.chromiumPath }));
    [ann, bob] = [browsers[0]!.page, browsers[1]!.page];
    bob.on("websocket", (socket) => {
      const entry: (typeof bobSockets)[number] = { socket, openedAt: Date.now() };
      bobSockets.push(entry);
      socket.on("close", () => {
        entry.closedAt = Date.now();
      });
    });
  });

  after(async () => {
    for (const user of browsers) {
      if (user.problems.length) console.log(`a browser reported:\n  ${user.problems.join("\n  ")}`);
    }
    await Promise.all(browsers.map((user) => user.close()));
    for (const server of servers) await server.stop();
    await lab?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A server on the lab's bridge, over HTTPS (the namespace's page needs a secure context for its microphone). */
  async function server(callGraceMs: number): Promise<TestServer> {
    const t = await startTestServer({
      host: lab.hostAddress,
      media: { ip: lab.hostAddress, portMin: 40000, portMax: 49999 },
      tls: { selfSigned: true },
      // A 2 s heartbeat: the server sees the connection gone within the cut (5 s by default).
      heartbeatMs: 2000,
      callGraceMs,
    });
    servers.push(t);
    return t;
  }

  /** Both sign up on `t`, Ann calls Bob, Bob answers; resolves once each hears the other. */
  async function inCall(t: TestServer, suffix: string): Promise<void> {
    await registerThroughUi(ann, t.server.httpUrl, {
      username: `${ANN.username}${suffix}`,
      displayName: ANN.displayName,
    });
    await registerThroughUi(bob, t.server.httpUrl, {
      username: `${BOB.username}${suffix}`,
      displayName: BOB.displayName,
    });
    await callButton(ann, BOB.displayName).click();
    await answerAndHearEachOther(
      incomingDialog(bob),
      { page: ann, name: "Ann", hz: HZ.ann },
      { page: bob, name: "Bob", hz: HZ.bob },
    );
  }

  /** 1 s measurements of what `page` receives, back to back, until `until` (epoch ms) is near. */
  async function listenUntil(page: Page, until: number): Promise<ReceivedAudio[]> {
    const heard: ReceivedAudio[] = [];
    while (Date.now() + 1500 < until) heard.push(await receivedAudio(page, 1));
    return heard;
  }

  it("keeps the call and its audio through a 10 s cut, shows the peer reconnecting, then hangs up normally", async () => {
    const t = await server(30_000);
    await inCall(t, "");
    const note = ann.getByTestId("peer-reconnecting");
    assert.equal(await note.count(), 0, "no reconnecting note before the cut");
    const socketsBefore = bobSockets.length;

    const cutAt = Date.now();
    await roaming.block({ tcp: true });
    const [, annHeard, bobHeard] = await Promise.all([
      expectVisible(note, CUT_MS - 1000),
      listenUntil(ann, cutAt + CUT_MS),
      listenUntil(bob, cutAt + CUT_MS),
    ]);
    // Still cut: the note is there, with Bob's name.
    assert.match(await note.innerText(), /Bob Roaming.s connection dropped: reconnecting…/);
    await sleep(cutAt + CUT_MS - Date.now());
    await roaming.unblock();
    console.log(`during the cut Ann heard: ${annHeard.map(describeAudio).join("; ")}`);
    console.log(`during the cut Bob heard: ${bobHeard.map(describeAudio).join("; ")}`);
    for (const [who, heard, hz] of [
      ["Ann", annHeard, HZ.bob],
      ["Bob", bobHeard, HZ.ann],
    ] as const) {
      assert.ok(heard.length >= 4, `${who} was measured ${heard.length} times during the cut`);
      const silent = heard.filter((audio) => !isTone(hz)(audio));
      assert.deepEqual(silent.map(describeAudio), [], `${who} stopped hearing ${hz} Hz during the cut`);
    }

    // Bob's page notices once packets flow, reconnects on its own and takes the call back.
    await expectGone(note, 40_000);
    await expectConnected(bob, 10_000);
    const reopened = bobSockets.slice(socketsBefore);
    assert.ok(reopened.length >= 1, "Bob's page opened a new signaling connection after the cut");
    assert.ok(
      bobSockets[socketsBefore - 1]?.closedAt !== undefined,
      "Bob's signaling connection from before the cut is closed",
    );
    console.log(`Bob's page reconnected ${((reopened[0]!.openedAt - cutAt) / 1000).toFixed(1)} s after the cut began`);
    await Promise.all([
      waitForReceivedAudio(ann, isTone(HZ.bob), "Ann hearing Bob after the cut", { seconds: 1 }),
      waitForReceivedAudio(bob, isTone(HZ.ann), "Bob hearing Ann after the cut", { seconds: 1 }),
    ]);
    // The call's signaling works again from Bob's side: his hang-up ends it for both.
    await button(bob, "Hang up").click();
    await expectEndNotice(bob, "Call ended");
    await expectEndNotice(ann, "Call ended");
  });

  it("ends the call on both pages as a lost connection when the cut outlasts the grace period", async () => {
    const t = await server(3000);
    await inCall(t, "2");
    await roaming.block({ tcp: true });
    try {
      // The server gives up on Bob 3 s after its heartbeat noticed: Ann's call ends during the cut.
      await expectEndNotice(ann, "Connection lost", 12_000);
      await sleep(1000);
    } finally {
      await roaming.unblock();
    }
    // Bob's page reconnects, the server no longer has the call, so his page ends it too.
    await expectEndNotice(bob, "Connection lost", 40_000);
    await expectConnected(bob, 10_000);
    await expectGone(button(bob, "Hang up"));
    await expectGone(button(ann, "Hang up"));
  });
});
