/**
 * The native data plane's lifetimes and its fallbacks: a leg closed while packets still pour in,
 * then its socket closed by Node; legs added and closed by the hundred without leaking a file
 * descriptor or a leg; a plane closed with its legs; and the build and load failures that leave the
 * server on its JavaScript plane (build.mjs exits 0 with one line and no addon; loadNativePlane
 * says why).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { loadNativePlane, NativeLegStat } from "@parley/rtc";
import { waitFor } from "@parley/testkit";
import { addRelayLeg, Client, closeRelaySockets, nativePlane, payloadOf, sleep, talk } from "./native-plane-kit.js";

const BUILD_SCRIPT = fileURLToPath(new URL("../native/build.mjs", import.meta.url));
const PROFILE = 7;

function openFds(): number {
  return fs.readdirSync("/proc/self/fd").length;
}

after(() => closeRelaySockets());

describe("the native data plane's lifetimes", () => {
  it("closes a leg while its socket is still being flooded, then Node closes the socket: nothing crashes and the plane goes on", async () => {
    const module = nativePlane();
    const plane = module.createPlane(2);
    const clientA = await Client.create(PROFILE, 1);
    const clientB = await Client.create(PROFILE, 2);
    const a = await addRelayLeg(plane, clientA, { thread: 0 });
    const b = await addRelayLeg(plane, clientB, { thread: 1 });
    b.leg.route(0, a.leg);
    a.leg.route(0, b.leg);
    const [portA, portB] = [a.socket.address().port, b.socket.address().port];
    let flooding = true;
    const flood = (async () => {
      for (let seq = 1; flooding; seq++) {
        // Both clients keep sending at both legs (and at b's port once its socket is gone).
        clientA.send(portA, seq, seq * 960, payloadOf("a", seq));
        clientB.send(portB, seq, seq * 960, payloadOf("b", seq));
        if (seq % 4 === 0) await sleep(1);
      }
    })();
    await waitFor(() => clientA.received.length > 50 && clientB.received.length > 50, "traffic both ways");
    b.leg.close();
    b.leg.close();
    b.socket.close();
    await sleep(100);
    const heardByB = clientB.received.length;
    await sleep(100);
    assert.equal(clientB.received.length, heardByB, "b hears nothing once its leg closed");
    assert.equal(b.leg.stats[NativeLegStat.packetsIn]! > 0, true);
    // a's leg is still up: it receives, and its slot (whose source closed) is silent.
    const aIn = a.leg.stats[NativeLegStat.packetsIn]!;
    await waitFor(() => a.leg.stats[NativeLegStat.packetsIn]! > aIn + 20, "a still receiving");
    flooding = false;
    await flood;
    // What the flood left in a's socket is read before c listens (on a busy machine it can take a while).
    let before = -1;
    await waitFor(
      async () => {
        const now = a.leg.stats[NativeLegStat.packetsIn]!;
        const settled = now === before;
        before = now;
        await sleep(100);
        return settled;
      },
      "a's socket drained",
      { timeoutMs: 20_000 },
    );
    // The plane still forwards for new legs.
    const clientC = await Client.create(PROFILE, 3);
    try {
      const c = await addRelayLeg(plane, clientC, { thread: 1 });
      c.leg.route(0, a.leg);
      await talk(clientA, a.socket, "a-again", 60000, 0, 5);
      const again = () => clientC.received.filter((p) => p.payload.toString().startsWith("a-again:"));
      await waitFor(() => again().length === 5, "the plane forwarding after the close");
      assert.equal(clientC.received.length, 5, "c hears only what a said after c joined");
    } finally {
      plane.close();
      for (const client of [clientA, clientB, clientC]) client.close();
    }
  });

  it("adds and closes 200 legs (routed to each other, under traffic) and gives back every file descriptor and leg", async () => {
    const module = nativePlane();
    const plane = module.createPlane(2);
    const fdsBefore = openFds();
    const legsBefore = module.counts().legs;
    const client = await Client.create(PROFILE, 9);
    const sender = await Client.create(PROFILE, 10);
    for (let round = 0; round < 40; round++) {
      const legs = [];
      for (let i = 0; i < 5; i++) legs.push(await addRelayLeg(plane, i === 0 ? sender : client, { thread: i % 2 }));
      for (let i = 1; i < legs.length; i++) legs[i]!.leg.route(0, legs[0]!.leg);
      sender.send(legs[0]!.socket, round + 1, 0, payloadOf("s", round));
      sender.sendRaw(legs[0]!.socket, Buffer.from([0, 1, 0, 0]));
      if (round % 10 === 0) await sleep(5);
      for (const relay of legs) {
        relay.leg.close();
        relay.socket.close();
      }
    }
    assert.deepEqual(plane.legCounts(), [0, 0]);
    client.close();
    sender.close();
    closeRelaySockets();
    await waitFor(() => openFds() <= fdsBefore, `open fds back to ${fdsBefore}`, { timeoutMs: 10000 });
    await waitFor(() => module.counts().legs <= legsBefore, "every leg's memory freed", { timeoutMs: 10000 });
    plane.close();
  });

  it("closes every leg with its plane; the legs' calls are then no-ops", async () => {
    const module = nativePlane();
    const planesBefore = module.counts().planes;
    const plane = module.createPlane(1);
    const client = await Client.create(PROFILE, 5);
    const a = await addRelayLeg(plane, client);
    const b = await addRelayLeg(plane, client);
    b.leg.route(0, a.leg);
    plane.close();
    plane.close();
    b.leg.route(0, a.leg);
    b.leg.setRemote("127.0.0.1", 9);
    b.leg.sendFrom(0, 1, 1, 0, 1, 1, false, Buffer.from("x"), Date.now());
    a.leg.close();
    assert.throws(() => plane.addLeg({} as never), /closed/);
    assert.deepEqual(plane.legCounts(), []);
    client.close();
    assert.ok(module.counts().planes >= planesBefore);
  });
});

describe("the native data plane's fallbacks", () => {
  for (const [what, env] of [
    ["CC names a missing compiler", { CC: "/nonexistent/cc" }],
    ["no cc is on the PATH", { PATH: "", CC: "" }],
  ] as const) {
    it(`build.mjs exits 0 with one line why and no addon when ${what}`, () => {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "parley-native-"));
      try {
        // An empty directory as the whole PATH: no compiler anywhere on it.
        const emptyPath = env.PATH === "" ? path.join(out, "empty-path") : undefined;
        if (emptyPath) fs.mkdirSync(emptyPath);
        // A stale addon from an older build must not survive a build that cannot run.
        const stale = path.join(out, "parley-data-plane.node");
        fs.writeFileSync(stale, "stale");
        fs.utimesSync(stale, 0, 0);
        const result = spawnSync(process.execPath, [BUILD_SCRIPT, "--out", out], {
          env: { ...process.env, ...env, ...(emptyPath ? { PATH: emptyPath } : {}) },
          encoding: "utf8",
        });
        assert.equal(result.status, 0, result.stderr);
        const lines = `${result.stdout}${result.stderr}`.trim().split("\n");
        assert.equal(lines.length, 1, lines.join("\n"));
        assert.match(lines[0]!, /^parley: native data plane not built: no C compiler/);
        assert.deepEqual(
          fs.readdirSync(out).filter((name) => name.endsWith(".node")),
          [],
        );
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    });
  }

  it("loadNativePlane says why when the addon is missing or is not the plane", () => {
    const missing = loadNativePlane("/nonexistent/parley-data-plane.node");
    assert.equal(typeof missing, "string");
    assert.match(missing as string, /not built/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-native-"));
    try {
      const junk = path.join(dir, "junk.node");
      fs.writeFileSync(junk, "not an ELF file");
      assert.match(loadNativePlane(junk) as string, /cannot be loaded/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
