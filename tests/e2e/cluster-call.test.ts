/**
 * The softphone across cluster nodes: two Parley nodes share one PostgreSQL database and one Redis
 * (real, throwaway instances), each advertising its own media address on loopback. Page A signs up
 * on node 1's web UI, page B on node 2's. A sees B online, calls, B's page rings and answers, each
 * hears the other's tone (FFT), and B hangs up. The call lives on the caller's node, so the only
 * address any page receives is node 1's media address: never node 2's, never a client's.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  assertNoCspViolations,
  type BrowserUser,
  launchBrowserUsers,
  postgresUnavailable,
  type Redis,
  redisUnavailable,
  type ServerProcess,
  sharedPostgres,
  spawnServer,
  startRedis,
  tempDir,
  toneWav,
} from "@parley/testkit";
import type { Page } from "playwright-core";
import {
  answerAndHearEachOther,
  button,
  callButton,
  callPanel,
  expectAttribute,
  expectContactStatus,
  expectEndNotice,
  expectGone,
  expectText,
  expectValue,
  expectVisible,
  incomingDialog,
  type Person,
  registerThroughUi,
  statusSelect,
} from "./helpers.js";

const ANA: Person = { username: "ana", displayName: "Ana on node 1" };
const BEN: Person = { username: "ben", displayName: "Ben on node 2" };
const ANA_HZ = 440;
const BEN_HZ = 1000;
/** Each node advertises its own media address, so a page's frames tell which node it learned of. */
const MEDIA = { 1: "127.0.0.11", 2: "127.0.0.12" } as const;

const skip = postgresUnavailable() ?? redisUnavailable();

describe("the softphone with caller and callee on different cluster nodes", { skip, timeout: 180_000 }, () => {
  let redis: Redis | undefined;
  const nodes: ServerProcess[] = [];
  const dirs: string[] = [];
  const nodeDirs: string[] = [];
  let browsers: BrowserUser[] = [];
  let ana: Page;
  let ben: Page;
  /** Every WebSocket frame each page received. */
  const received = new Map<Page, string[]>();

  before(
    async () => {
      const dir = tempDir("parley-e2e-cluster-");
      dirs.push(dir);
      const [database, started] = await Promise.all([
        sharedPostgres().then((cluster) => cluster.createDatabase()),
        startRedis().then((r) => (redis = r)),
        launchBrowserUsers([toneWav(dir, ANA_HZ), toneWav(dir, BEN_HZ)]).then((users) => (browsers = users)),
      ]);
      const start = (node: 1 | 2) => {
        const data = tempDir("parley-node-");
        dirs.push(data);
        nodeDirs.push(data);
        return spawnServer(data, [
          "--database",
          database,
          "--redis",
          started.url,
          "--hash-concurrency",
          "2",
          "--media-ip",
          MEDIA[node],
        ]);
      };
      // Node 1 first: it creates the database's schema, which node 2 then finds.
      nodes.push(await start(1));
      nodes.push(await start(2));
      [ana, ben] = browsers.map((b) => b.page) as [Page, Page];
      for (const page of [ana, ben]) {
        const frames: string[] = [];
        received.set(page, frames);
        page.on("websocket", (ws) => ws.on("framereceived", ({ payload }) => frames.push(String(payload))));
      }
    },
    { timeout: 90_000 },
  );

  after(
    async () => {
      for (const [i, user] of browsers.entries()) {
        if (user.problems.length) console.log(`browser ${i + 1} reported:\n  ${user.problems.join("\n  ")}`);
      }
      await Promise.all(browsers.map((user) => user.close()));
      for (const node of nodes) {
        if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill("SIGTERM");
        await node.exited;
      }
      await redis?.stop();
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
      for (const [i, user] of browsers.entries()) assertNoCspViolations(user, `browser ${i + 1}`);
    },
    { timeout: 30_000 },
  );

  /** Runs `body`; on failure, the end of each node's log is printed before the error goes on. */
  async function withLogs(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (error) {
      for (const [i, data] of nodeDirs.entries()) {
        const log = fs.readFileSync(path.join(data, "parley.log"), "utf8").split("\n").slice(-40).join("\n");
        console.log(`--- node ${i + 1} (${MEDIA[(i + 1) as 1 | 2]}), end of parley.log:\n${log}`);
      }
      throw error;
    }
  }

  it("each page signs up on its own node; A sees B online, and B's status changes live", () =>
    withLogs(async () => {
      // B first: A's directory, read at sign-in, then holds B, whose devices are on node 2.
      await registerThroughUi(ben, nodes[1]!.httpUrl, BEN);
      await registerThroughUi(ana, nodes[0]!.httpUrl, ANA);
      await expectContactStatus(ana, BEN.displayName, "available", "Available");
      // A status chosen on node 2 reaches node 1's page live, and back.
      await statusSelect(ben).selectOption("away");
      await expectContactStatus(ana, BEN.displayName, "away", "Away");
      await statusSelect(ben).selectOption("available");
      await expectContactStatus(ana, BEN.displayName, "available", "Available");
    }));

  it("B, signed in before A signed up on the other node, sees A's new account appear, online", () =>
    withLogs(() => expectContactStatus(ben, ANA.displayName, "available", "Available")));

  it("A on node 1 calls B on node 2: B rings, answers, both are connected and hear each other", () =>
    withLogs(async () => {
      await callButton(ana, BEN.displayName).click();
      const dialog = incomingDialog(ben);
      await expectVisible(dialog);
      await expectText(dialog, `${ANA.displayName} is calling`);
      await expectText(callPanel(ana), "Ringing…");
      await answerAndHearEachOther(
        dialog,
        { page: ana, name: "Ana", hz: ANA_HZ },
        { page: ben, name: "Ben", hz: BEN_HZ },
      );
      for (const page of [ana, ben]) {
        await expectAttribute(callPanel(page), "data-phase", "active");
        // The audio path is up (ICE connected to node 1's relay), directly over UDP.
        await expectAttribute(page.getByTestId("call-quality"), "data-path", "direct", 15_000);
      }
      await expectContactStatus(ana, BEN.displayName, "in-call", "In a call");
      await expectContactStatus(ben, ANA.displayName, "in-call", "In a call");
    }));

  it("B hangs up: both pages return to idle and available", () =>
    withLogs(async () => {
      await button(ben, "Hang up").click();
      await Promise.all([expectEndNotice(ana, "Call ended"), expectEndNotice(ben, "Call ended")]);
      for (const page of [ana, ben]) {
        await expectGone(callPanel(page));
        await expectGone(button(page, "Hang up"));
        await expectGone(page.getByTestId("remote-audio"));
        await expectValue(statusSelect(page), "available");
      }
      await expectContactStatus(ana, BEN.displayName, "available", "Available");
      await expectContactStatus(ben, ANA.displayName, "available", "Available");
    }));

  it("no page received any address but the call's node's media address", () => {
    for (const [name, page] of [
      ["Ana (node 1)", ana],
      ["Ben (node 2)", ben],
    ] as const) {
      const frames = received.get(page) ?? [];
      assert.ok(frames.length > 10, `${name}'s signaling was watched (${frames.length} frames)`);
      const addresses = new Set(
        frames.flatMap((frame) => frame.match(/(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])/g) ?? []),
      );
      addresses.delete("0.0.0.0");
      assert.deepEqual([...addresses], [MEDIA[1]], `addresses in ${name}'s frames: ${[...addresses]}`);
    }
  });

  it("the nodes lost no call message between them", () => {
    for (const [i, data] of nodeDirs.entries()) {
      const log = fs.readFileSync(path.join(data, "parley.log"), "utf8");
      assert.doesNotMatch(
        log,
        /call messages from a node missed|request of another node's device failed/,
        `node ${i + 1}`,
      );
    }
  });
});
