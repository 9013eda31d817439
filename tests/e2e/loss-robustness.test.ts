/**
 * What Opus in-band FEC buys on a lossy network, measured side by side: two calls at the same time,
 * each between two Chromiums on machines of the network lab, one call through a server asking for
 * FEC (the default), the other through a server started with `--opus-fec off`. Each browser speaks
 * a sample sentence (speech: on a pure tone libopus picks its CELT mode, which has no FEC, below
 * ~8 % expected loss), the same two sentences in both calls, and in each call Bob's machine loses
 * 5 % of its packets both ways. Both calls see the same machine load in the same seconds, so a
 * CPU-heavy moment cannot favour one configuration.
 *
 * The measure is what FEC changes: of the audio each browser received, the share NetEq had to
 * conceal (WebRTC stats: concealedSamples / totalSamplesReceived of the inbound audio), and the
 * concealed 20 ms frames per lost packet, which does not depend on how many packets the random
 * drops happened to hit. Without FEC a lost packet is about one concealed frame; with FEC most
 * single losses are rebuilt from the next packet. The stats are read every second; a second in
 * which any of the four receivers stalled counts for neither call, because a stall's concealment
 * (late packets, not lost ones) is not what FEC is about and swamps the loss's on a loaded machine.
 * A receiver stalled in a second when its playout fell behind the clock (totalSamplesReceived
 * grew by less than 90 % of 48 000 samples a second), its jitter buffer grew (the average
 * jitterBufferDelay / jitterBufferEmittedCount of that second over 60 ms above the previous
 * second's: NetEq grows its delay for packets that come late and then in a burst, as after a
 * stall, not for lost ones), or its packets arrived irregularly (RTP interarrival jitter over 10 ms
 * at the second's end; the lab's links show 1-5 ms). Both calls are also set up together, so their
 * jitter buffers start from the same history.
 * The exclusion looks at neither the loss nor the concealment, and drops the same seconds from both
 * calls, so it cannot favour one. The assertion is on the concealed frames per lost packet of both
 * directions together: with FEC under three quarters of without (measured: about a third).
 *
 * Also reports whether Chromium offers RED (RFC 2198) and what the relay answers. Jitter cannot be
 * tested here when the kernel has no sch_netem: that part is skipped with the network lab's reason.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type BrowserUser,
  createNetworkLab,
  type LabHost,
  LabUnsupportedError,
  launchBrowserUser,
  type NetworkLab,
  networkLabUnavailable,
  startTestServer,
  type TestServer,
  waitForReceivedAudio,
} from "@parley/testkit";
import type { Page } from "playwright-core";
import { callButton, expectGone, incomingDialog, type Person, registerThroughUi } from "./helpers.js";
import {
  KEEP_PEER_CONNECTIONS,
  median,
  opusFmtp,
  type Snapshot,
  sdps,
  snapshot,
  stallIn,
  summed,
  windowsOf,
} from "./loss-robustness-stats.js";

const ANN: Person = { username: "ann", displayName: "Ann Lossless" };
const BOB: Person = { username: "bob", displayName: "Bob Lossy" };
const SAMPLES = path.resolve(import.meta.dirname, "../../samples");
const VOICE = { ann: path.join(SAMPLES, "hello-en.wav"), bob: path.join(SAMPLES, "bonjour-fr.wav") };
const LOSS_PERCENT = 5;
/** Let the speakers' encoders learn the loss (receiver reports every second, smoothed) and the receivers' jitter buffers settle to it before measuring. */
const SETTLE_MS = 8000;
/** The measured seconds: ~1500 packets each way per call, ~75 of them lost, before stalls are taken out. */
const WINDOWS = 30;
/** Fewer seconds without a stall than this and the machine was too busy to measure anything. */
const MIN_KEPT = 10;

type Fec = "on" | "off";
type Side = "ann" | "bob";
interface LossyCall {
  server: TestServer;
  pages: Record<Side, Page>;
}

describe("a call on a lossy network", { skip: networkLabUnavailable() ?? false, timeout: 300_000 }, () => {
  let lab: NetworkLab;
  let hosts: Record<Fec, Record<Side, LabHost>>;
  const browsers: BrowserUser[] = [];
  const servers: TestServer[] = [];

  async function browserOn(host: LabHost, voice: string): Promise<Page> {
    const user = await launchBrowserUser(voice, {
      executablePath: host.chromiumPath,
      args: ["--ignore-certificate-errors"],
    });
    browsers.push(user);
    await user.context.addInitScript({ content: KEEP_PEER_CONNECTIONS });
    return user.page;
  }

  before(async () => {
    lab = await createNetworkLab();
    hosts = {
      on: { ann: await lab.addHost("ann-fec"), bob: await lab.addHost("bob-fec") },
      off: { ann: await lab.addHost("ann-nofec"), bob: await lab.addHost("bob-nofec") },
    };
  });

  after(async () => {
    await Promise.all(browsers.map((user) => user.close()));
    await Promise.all(servers.map((server) => server.stop()));
    await lab?.close();
  });

  /** A server with FEC on or off (its own media ports), and a call on it between Ann and Bob, hearing each other. */
  async function callOn(fec: Fec): Promise<LossyCall> {
    const server = await startTestServer({
      host: lab.hostAddress,
      media: {
        ip: lab.hostAddress,
        ...(fec === "on" ? { portMin: 40000, portMax: 44999 } : { portMin: 45000, portMax: 49999 }),
      },
      tls: { selfSigned: true },
      opusFec: fec === "on",
      // DTX off on both: the sentences' pauses would otherwise mix DTX with loss in the concealment.
      opusDtx: false,
    });
    servers.push(server);
    const ann = await browserOn(hosts[fec].ann, VOICE.ann);
    const bob = await browserOn(hosts[fec].bob, VOICE.bob);
    await registerThroughUi(ann, server.server.httpUrl, ANN);
    await registerThroughUi(bob, server.server.httpUrl, BOB);
    await callButton(ann, BOB.displayName).click();
    const dialog = incomingDialog(bob);
    await dialog.getByRole("button", { name: "Answer", exact: true }).click();
    await expectGone(dialog);
    const speech = (audio: { rms: number }) => audio.rms > 0.005;
    await Promise.all([
      waitForReceivedAudio(ann, speech, `Ann hearing Bob (FEC ${fec})`, { seconds: 1 }),
      waitForReceivedAudio(bob, speech, `Bob hearing Ann (FEC ${fec})`, { seconds: 1 }),
    ]);
    const { local, remote } = await sdps(bob);
    console.log(`FEC ${fec}: Chromium offers Opus fmtp "${opusFmtp(local)}", the relay answers "${opusFmtp(remote)}"`);
    console.log(
      `  RED (RFC 2198): Chromium ${/a=rtpmap:\d+ red\/48000\/2/i.test(local) ? "offers" : "does not offer"} red/48000/2; ` +
        `the relay ${/a=rtpmap:\d+ red\/48000\/2/i.test(remote) ? "negotiates" : "does not negotiate"} it`,
    );
    return { server, pages: { ann, bob } };
  }

  it("conceals less of the audio per lost packet with Opus in-band FEC than with --opus-fec off, side by side at 5 % loss both ways", async () => {
    // Set up together too, so both jitter buffers start from the same history.
    const [on, off] = await Promise.all([callOn("on"), callOn("off")]);
    const calls: Record<Fec, LossyCall> = { on, off };
    const receivers = (["on", "off"] as const).flatMap((fec) =>
      (["ann", "bob"] as const).map((side) => ({
        fec,
        side,
        page: calls[fec].pages[side],
        readings: [] as Snapshot[],
      })),
    );
    await Promise.all([
      hosts.on.bob.impair({ lossPercent: LOSS_PERCENT }),
      hosts.off.bob.impair({ lossPercent: LOSS_PERCENT }),
    ]);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    // Every second, all four receivers read together.
    for (let i = 0; i <= WINDOWS; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 1000));
      const reading = await Promise.all(receivers.map((r) => snapshot(r.page)));
      for (const [r, receiver] of receivers.entries()) receiver.readings.push(reading[r] as Snapshot);
    }
    await Promise.all([hosts.on.bob.impair({ lossPercent: 0 }), hosts.off.bob.impair({ lossPercent: 0 })]);

    const measured = receivers.map((r) => {
      const windows = windowsOf(r.readings);
      return { ...r, windows, medianBufferMs: median(windows.map((w) => w.bufferMs)) };
    });
    const stalls = Array.from({ length: WINDOWS }, (_, i) =>
      measured.flatMap(({ fec, side, windows }) => {
        const w = windows[i];
        const why = w ? stallIn(w, windows[i - 1]) : "no reading";
        return why ? [`${side} (FEC ${fec}) ${why}`] : [];
      }),
    );
    const kept = new Set(stalls.flatMap((why, i) => (why.length === 0 ? [i] : [])));
    console.log(
      `${LOSS_PERCENT} % loss both ways at Bob in both calls; ${kept.size} of ${WINDOWS} seconds kept ` +
        `(timeline, x = a receiver stalled: ${stalls.map((why) => (why.length ? "x" : ".")).join("")})`,
    );
    for (const [i, why] of stalls.entries()) if (why.length) console.log(`  second ${i + 1}: ${why.join(", ")}`);

    const result = measured.map(({ fec, side, windows, medianBufferMs }) => {
      const all = summed(windows);
      const keptWindows = windows.filter((_, i) => kept.has(i));
      const sum = summed(keptWindows);
      const sender = measured.find((r) => r.fec === fec && r.side !== side)?.readings.at(-1);
      const hears = side === "ann" ? "Ann (hears Bob's lossy uplink)" : "Bob (hears Ann over his lossy downlink)";
      console.log(
        `  FEC ${fec}, ${hears}: concealed ${(sum.share * 100).toFixed(2)} % (${sum.lost} packets lost, ` +
          `${sum.perLoss.toFixed(2)} concealed frames per loss, jitter buffer median ${medianBufferMs.toFixed(0)} ms; ` +
          `all ${WINDOWS} s: ${(all.share * 100).toFixed(2)} %, ${all.perLoss.toFixed(2)} per loss; ` +
          `the sender's packets average ${((sender?.bytesSent ?? 0) / Math.max(1, sender?.packetsSent ?? 0)).toFixed(0)} bytes, ` +
          `its last receiver report said ${((sender?.fractionLost ?? 0) * 100).toFixed(1)} % lost)`,
      );
      return { fec, kept: keptWindows };
    });
    const both = (fec: Fec) => summed(result.filter((r) => r.fec === fec).flatMap((r) => r.kept));
    const fecOn = both("on");
    const fecOff = both("off");
    console.log(
      `concealed share at ${LOSS_PERCENT} % loss: FEC on ${(fecOn.share * 100).toFixed(2)} %, FEC off ${(fecOff.share * 100).toFixed(2)} %; ` +
        `concealed frames per lost packet: FEC on ${fecOn.perLoss.toFixed(2)}, FEC off ${fecOff.perLoss.toFixed(2)}`,
    );
    assert.ok(
      kept.size >= MIN_KEPT,
      `only ${kept.size} of ${WINDOWS} seconds without a stall: the machine was too busy`,
    );
    assert.ok(
      fecOff.perLoss > 0.5,
      `without FEC the loss must show as concealment (${fecOff.perLoss.toFixed(2)} frames per loss)`,
    );
    // ~40-75 random losses per direction in the kept seconds: a margin over that noise (measured: about a third).
    assert.ok(
      fecOn.perLoss < fecOff.perLoss * 0.75,
      `FEC on conceals ${fecOn.perLoss.toFixed(2)} frames per lost packet, not clearly less than ${fecOff.perLoss.toFixed(2)}`,
    );
  });

  it("jitter: skipped when the kernel cannot delay packets", async (t) => {
    try {
      await hosts.on.bob.impair({ lossPercent: LOSS_PERCENT, jitterMs: 30, delayMs: 40 });
      await hosts.on.bob.impair({ lossPercent: 0 });
      t.skip("this kernel has sch_netem, but the jitter measurement is not written yet");
    } catch (error) {
      if (!(error instanceof LabUnsupportedError)) throw error;
      console.log(`jitter not measured: ${error.message}`);
      t.skip(error.message);
    }
  });
});
