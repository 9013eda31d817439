/**
 * The benchmark load generator's native RTP engine (bench/native/rtp-engine.c), on real werift
 * peer connections: it takes each connected leg's socket over, carries SRTP both ways
 * (authenticating every packet, with the kernel's receive stamps through io_uring), keeps werift's
 * ICE consent and DTLS working through it, counts a forged packet as an authentication failure,
 * and interoperates with Parley's relay (which re-encrypts every packet the engine then
 * authenticates). Both builds: the bench's (the native data plane's SRTP on OpenSSL) and the one
 * on libsrtp, the reference implementation, so the relay's SRTP is checked against it. Needs a C
 * compiler, OpenSSL's and libsrtp2's headers (`apt-get install -y libssl-dev libsrtp2-dev`; CI
 * installs them).
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { after, before, describe, it } from "node:test";
import type { RTCPeerConnection } from "@parley/rtc";
import { MediaRelay } from "@parley/server";
import { waitFor } from "@parley/testkit";
import { pino } from "pino";
import { encodeFrames } from "../../bench/lib/cluster.js";
import { connected, connectedPeer, createClientPeer, gathered, PortAllocator } from "../../bench/lib/fast-leg.js";
import { Histogram } from "../../bench/lib/hist.js";
import { createMediaPlane, type MediaPlane, type PlaneLeg } from "../../bench/lib/media-plane.js";
import { buildEngine, type EngineSrtp } from "../../bench/lib/native-engine.js";

// Above the kernel's ephemeral range (32768-60999) and the test servers' media range (40000-49999),
// so no other test's socket can hold them.
const ports = new PortAllocator(61000, 61199);
const peers: RTCPeerConnection[] = [];
let plane: MediaPlane;

/** Two werift peers connected to each other directly (offer, answer, ICE + DTLS). */
async function directPair() {
  const a = createClientPeer(ports);
  const b = createClientPeer(ports);
  peers.push(a.pc, b.pc);
  await a.pc.setLocalDescription(await a.pc.createOffer());
  await b.pc.setRemoteDescription({ type: "offer", sdp: await gathered(a.pc) });
  await b.pc.setLocalDescription(await b.pc.createAnswer());
  await a.pc.setRemoteDescription({ type: "answer", sdp: await gathered(b.pc) });
  await Promise.all([connected(a.pc), connected(b.pc)]);
  return [a, b];
}

/** A window starting shortly, counted `graceMs` after its end. */
function measure(seconds: number, graceMs = 1000) {
  const start = Date.now() + 300;
  return plane.measure(start, start + seconds * 1000, graceMs);
}

for (const srtp of ["openssl", "libsrtp"] satisfies EngineSrtp[]) {
  const built = buildEngine(srtp);
  const skip = "error" in built ? `the RTP engine cannot be built here: ${built.error}` : false;

  describe(`load generator: native RTP engine (${srtp})`, { skip }, () => {
    before(async () => {
      if ("error" in built) return;
      plane = await createMediaPlane(
        built.binary,
        encodeFrames().map((f) => Buffer.from(f, "base64")),
      );
    });

    after(async () => {
      await plane?.close();
      await Promise.all(peers.map((pc) => pc.close().catch(() => undefined)));
    });

    it("takes two connected werift legs over and carries every packet both ways, authenticated, on one clock", async (t) => {
      // Taking another process's socket needs ptrace access to it (same user, and Yama or
      // CAP_SYS_PTRACE allowing it); where the machine forbids that, the bench uses its Node plane.
      if (plane.fallbackReason) return t.skip(plane.fallbackReason);
      assert.equal(plane.kind, "native");
      const [a, b] = await directPair();
      const legs: PlaneLeg[] = [];
      for (const { pc, ssrc } of [a!, b!]) legs.push(await plane.attach(pc, ssrc));
      for (const leg of legs) await leg.stream(1);
      const firsts = await Promise.all(legs.map((leg) => leg.firstAudio));
      for (const at of firsts) assert.ok(at > 0 && at <= performance.now(), "each leg heard the other");

      const window = await measure(2);
      // Two streams at 50 packets/s for 2 s.
      assert.ok(window.sent >= 190 && window.sent <= 210, `sent ${window.sent}`);
      assert.equal(window.expected, window.sent);
      assert.equal(window.received, window.expected, "nothing lost on loopback");
      assert.equal(window.authFailures, 0);
      assert.equal(window.replays, 0);
      assert.equal(window.unstamped, 0, "the kernel stamped every packet's arrival");
      const delay = Histogram.from(window.delay);
      assert.equal(delay.count, window.received);
      assert.ok(delay.percentile(0.5) > 0 && delay.percentile(0.5) < 20, `p50 delay ${delay.percentile(0.5)} ms`);
      assert.ok(
        window.engine && window.engine.sent > 0 && window.engine.received > 0,
        "the engine reports its own costs",
      );

      // werift still owns ICE and DTLS on the taken sockets: consent checks keep the pair alive.
      assert.equal(a!.pc.connectionState, "connected");
      assert.equal(b!.pc.connectionState, "connected");

      // A forged SRTP packet (right shape, wrong key) at B's socket fails authentication and changes nothing else.
      const port = (connectedPeer(b!.pc).socket.address() as { port: number }).port;
      const forger = dgram.createSocket("udp4");
      const forged = Buffer.alloc(12 + 60 + 16, 0x5a);
      forged[0] = 0x80;
      forged[1] = 111;
      forged.writeUInt32BE(0x01020304, 8);
      await new Promise<void>((resolve, reject) =>
        forger.send(forged, port, "127.0.0.1", (e) => (e ? reject(e) : resolve())),
      );
      forger.close();
      const next = await measure(1);
      assert.equal(next.authFailures, 1, "the forged packet is the one authentication failure");
      assert.equal(next.received, next.expected, "the real streams go on");
      for (const leg of legs) await leg.release();
    });

    it("authenticates every packet Parley's relay re-encrypts (fast data plane, both directions)", async (t) => {
      if (plane.fallbackReason) return t.skip(plane.fallbackReason);
      const relay = new MediaRelay({ ip: "127.0.0.1", portMin: 61300, portMax: 61399 }, pino({ level: "silent" }));
      try {
        const ends = await Promise.all(
          ["a", "b"].map(async (id) => {
            const { pc, ssrc } = createClientPeer(ports);
            peers.push(pc);
            await pc.setLocalDescription(await pc.createOffer());
            const { leg, answerSdp } = await relay.createLeg(`engine-${id}`, await gathered(pc));
            await pc.setRemoteDescription({ type: "answer", sdp: answerSdp });
            await connected(pc);
            await waitFor(() => leg.state === "connected", `relay leg ${id} connected`);
            return { pc, ssrc, leg };
          }),
        );
        const [a, b] = ends as [(typeof ends)[0], (typeof ends)[0]];
        a.leg.forwardTo([b.leg]);
        b.leg.forwardTo([a.leg]);
        const legs: PlaneLeg[] = [];
        for (const { pc, ssrc } of ends) legs.push(await plane.attach(pc, ssrc));
        const failuresBefore = (await measure(0.1, 0)).authFailures;
        for (const leg of legs) await leg.stream(1);
        await Promise.all(legs.map((leg) => leg.firstAudio));

        const window = await measure(2);
        assert.ok(window.sent >= 190, `sent ${window.sent}`);
        assert.equal(window.authFailures, failuresBefore, `${srtp} accepts every packet the relay encrypted`);
        assert.ok(
          window.received >= window.expected - 2,
          `${window.received} of ${window.expected} packets came back through the relay`,
        );
        assert.ok(a.leg.counters.packetsIn > 0 && b.leg.counters.packetsOut > 0, "the relay counted them");
        for (const leg of legs) await leg.release();
      } finally {
        relay.close();
      }
    });
  });
}
