import assert from "node:assert/strict";
import { createCipheriv, randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { after, describe, it } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import {
  AesGcm,
  createPeer,
  DtlsSocket,
  ecbCipher,
  loadNativePlane,
  MediaStreamTrack,
  nominatedPath,
  type RTCPeerConnection,
  RtpHeader,
  RtpPacket,
  restrictSrtpProfiles,
  srtpProfileOf,
  useOPUS,
  usePCMU,
  useVP8,
} from "@parley/rtc";
import {
  assignSlots,
  DATA_PLANES,
  type DataPlane,
  type MediaLeg,
  type MediaLegState,
  MediaRelay,
  type MediaRelayOptions,
} from "@parley/server";
import { waitFor } from "@parley/testkit";
import { pino } from "pino";

const IP = "127.0.0.1";
const PORT_MIN = 40000;
const PORT_MAX = 40100;
const PAYLOAD_BYTES = 40;
const logger = pino({ level: "silent" });

const clients: TestClient[] = [];
const relays: MediaRelay[] = [];

after(async () => {
  for (const relay of relays) relay.close();
  await Promise.all(clients.map((client) => client.close()));
});

function newRelay(
  range: { portMin: number; portMax: number } = { portMin: PORT_MIN, portMax: PORT_MAX },
  connectTimeoutMs?: number,
  options: MediaRelayOptions = {},
) {
  const relay = new MediaRelay({ ip: IP, ...range }, logger, {
    ...options,
    ...(connectTimeoutMs ? { connectTimeoutMs } : {}),
  });
  relays.push(relay);
  return relay;
}

/** A relay whose legs run on `plane`; fails when the relay fell back from it (the addon did not load). */
function planeRelay(plane: DataPlane, options: MediaRelayOptions = {}) {
  const relay = newRelay(undefined, undefined, { ...options, dataPlane: plane });
  assert.equal(relay.dataPlane, plane, `the relay runs the ${plane} data plane`);
  return relay;
}

/** One test per data plane: `body` gets the plane (the test name ends with it). */
function planeIt(name: string, body: (plane: DataPlane) => Promise<void>, planes: readonly DataPlane[] = DATA_PLANES) {
  for (const plane of planes) it(`${name} (${plane} data plane)`, () => body(plane));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A softphone stand-in: a werift peer connection on 127.0.0.1 with one sendrecv audio track. */
class TestClient {
  readonly pc: RTCPeerConnection;
  readonly track = new MediaStreamTrack({ kind: "audio" });
  readonly received: RtpPacket[] = [];
  /** Received packets per audio m-line (slot), in m-line order. */
  readonly receivedBySlot: RtpPacket[][] = [];
  #timer: NodeJS.Timeout | undefined;
  #sequenceNumber: number;
  #timestamp: number;
  /** RFC 6464 level (0 loudest .. 127 silence) sent with each packet, when `audioLevel` was asked for. */
  level = 127;
  readonly #audioLevel: boolean;
  readonly #srtpProfile: number | undefined;

  constructor(
    opts: {
      opusPayloadType?: number;
      pcmuOnly?: boolean;
      video?: boolean;
      firstSeq?: number;
      /** Audio m-lines to offer: one sendrecv, the rest recvonly (conference receive slots). */
      slots?: number;
      audioLevel?: boolean;
      /** Offer every m-line on one transport (default), as browsers do. */
      bundle?: boolean;
      /** The only DTLS-SRTP protection profile this client offers or accepts (werift offers two). */
      srtpProfile?: number;
    } = {},
  ) {
    this.#audioLevel = opts.audioLevel ?? false;
    this.#srtpProfile = opts.srtpProfile;
    this.pc = createPeer({
      address: IP,
      bundlePolicy: opts.bundle === false ? "disable" : "max-bundle",
      audioLevel: opts.audioLevel ?? false,
      audioCodecs: opts.pcmuOnly
        ? [usePCMU()]
        : [useOPUS(opts.opusPayloadType ? { payloadType: opts.opusPayloadType } : {})],
      videoCodecs: opts.video ? [useVP8()] : [],
    });
    if (opts.video) this.pc.addTransceiver("video", { direction: "sendrecv" });
    else this.pc.addTransceiver(this.track, { direction: "sendrecv" });
    for (let slot = 1; slot < (opts.slots ?? 1); slot++) this.pc.addTransceiver("audio", { direction: "recvonly" });
    for (const [slot, transceiver] of this.pc.getTransceivers().entries()) {
      const packets: RtpPacket[] = [];
      this.receivedBySlot[slot] = packets;
      transceiver.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => packets.push(rtp)));
    }
    this.pc.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe((rtp) => this.received.push(rtp));
    });
    this.#sequenceNumber = opts.firstSeq ?? 1000;
    this.#timestamp = 123_456;
    clients.push(this);
  }

  async offer(): Promise<string> {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    if (this.#srtpProfile !== undefined) restrictSrtpProfiles(this.pc, [this.#srtpProfile]);
    await waitFor(() => this.pc.iceGatheringState === "complete", "client ICE gathering");
    return this.pc.localDescription?.sdp ?? "";
  }

  async accept(answerSdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: "answer", sdp: answerSdp });
  }

  /** Sends 20 ms Opus-sized packets, 50 a second, whose payload bytes all equal `marker`. */
  startSending(marker: number): void {
    this.stopSending();
    const payload = Buffer.alloc(PAYLOAD_BYTES, marker);
    this.#timer = setInterval(() => {
      const header = new RtpHeader({
        payloadType: 111,
        sequenceNumber: this.#sequenceNumber,
        timestamp: this.#timestamp,
        ssrc: 1,
      });
      if (this.#audioLevel) {
        const id = this.pc
          .getTransceivers()[0]
          ?.headerExtensions.find((e) => e.uri === "urn:ietf:params:rtp-hdrext:ssrc-audio-level")?.id;
        if (id !== undefined) header.extensions = [{ id, payload: Buffer.from([0x80 | this.level]) }];
      }
      this.#sequenceNumber = (this.#sequenceNumber + 1) & 0xffff;
      this.#timestamp = (this.#timestamp + 960) >>> 0;
      this.track.writeRtp(new RtpPacket(header, payload));
    }, 20);
  }

  stopSending(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Skips `count` sequence numbers (and their timestamps), as if that many packets were lost on the way. */
  lose(count: number): void {
    this.#sequenceNumber = (this.#sequenceNumber + count) & 0xffff;
    this.#timestamp = (this.#timestamp + 960 * count) >>> 0;
  }

  /** How many received packets carry `marker`. */
  countOf(marker: number): number {
    return this.received.filter((rtp) => rtp.payload[0] === marker).length;
  }

  /** The SRTP protection profile the connection negotiated. */
  srtpProfile(): number | undefined {
    return srtpProfileOf(this.pc);
  }

  /** The distinct markers received. */
  markers(): number[] {
    return [...new Set(this.received.map((rtp) => rtp.payload[0] ?? -1))];
  }

  async close(): Promise<void> {
    this.stopSending();
    await this.pc.close();
  }
}

/**
 * Offers, creates the relay leg (on `dataPlane` if given, else the relay's), applies the answer and
 * waits until both ends are connected and the leg runs on its data plane.
 */
async function connect(
  relay: MediaRelay,
  id: string,
  client: TestClient,
  dataPlane?: DataPlane,
  group?: string,
): Promise<{ leg: MediaLeg; answerSdp: string }> {
  const { leg, answerSdp } = await relay.createLeg(id, await client.offer(), {
    ...(dataPlane ? { dataPlane } : {}),
    ...(group ? { group } : {}),
  });
  await client.accept(answerSdp);
  await waitFor(
    () => leg.state === "connected" && client.pc.connectionState === "connected",
    `leg ${id} connected (leg ${leg.state}, client ${client.pc.connectionState})`,
  );
  assert.equal(leg.dataPlane, dataPlane ?? relay.dataPlane, `leg ${id}'s data plane`);
  return { leg, answerSdp };
}

function bindUdp(port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    socket.once("error", (error) => {
      socket.close();
      reject(error);
    });
    socket.bind({ port, address: IP }, () => resolve(socket));
  });
}

function closeSocket(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}

/** Two adjacent UDP ports on 127.0.0.1, held by this test (so no other process takes them). */
async function holdPortPair(): Promise<{ ports: [number, number]; sockets: dgram.Socket[] }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 39000 + Math.floor(Math.random() * 900);
    const sockets: dgram.Socket[] = [];
    try {
      for (const port of [base, base + 1]) sockets.push(await bindUdp(port));
      return { ports: [base, base + 1], sockets };
    } catch {
      await Promise.all(sockets.map(closeSocket));
    }
  }
  throw new Error("no two adjacent free UDP ports");
}

function candidatesOf(sdp: string): { protocol: string; address: string; port: number; type: string }[] {
  return [...sdp.matchAll(/^a=candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) typ (\S+)/gm)].map((m) => ({
    protocol: String(m[1]).toLowerCase(),
    address: String(m[2]),
    port: Number(m[3]),
    type: String(m[4]),
  }));
}

function ssrcOf(sdp: string): number {
  return Number(/^a=ssrc:(\d+) /m.exec(sdp)?.[1]);
}

describe("media relay", () => {
  it("answers an Opus offer with sendrecv audio, the offer's payload type, and candidates only on the media address and ports", async () => {
    const relay = newRelay();
    const client = new TestClient({ opusPayloadType: 111 });
    const states: MediaLegState[] = [];
    const { leg, answerSdp } = await relay.createLeg("answer-shape", await client.offer());
    leg.on("stateChange", (state) => states.push(state));
    assert.equal(leg.id, "answer-shape");
    assert.equal(leg.state, "connecting");
    assert.equal(relay.stats().legs, 1);

    assert.match(answerSdp, /^m=audio \d+ UDP\/TLS\/RTP\/SAVPF 111\r?$/m, "one audio m-line, Opus only");
    assert.match(answerSdp, /^a=rtpmap:111 opus\/48000\/2\r?$/im);
    assert.match(answerSdp, /^a=sendrecv\r?$/m);
    assert.match(answerSdp, /^a=fingerprint:sha-256 /m, "DTLS-SRTP");
    assert.doesNotMatch(answerSdp, /^m=(video|application)/m);
    const candidates = candidatesOf(answerSdp);
    assert.ok(candidates.length > 0, "the answer carries its candidates (no trickle)");
    for (const candidate of candidates) {
      assert.equal(candidate.address, IP);
      assert.equal(candidate.protocol, "udp");
      assert.equal(candidate.type, "host");
      assert.ok(candidate.port >= PORT_MIN && candidate.port <= PORT_MAX, `port ${candidate.port} within the range`);
    }

    await client.accept(answerSdp);
    await waitFor(() => leg.state === "connected", "the leg connected");
    assert.deepEqual(states, ["connected"]);
    relay.close();
  });

  planeIt(
    "forwards audio only between legs told to, both ways, rewriting SSRC and payload type per leg, until forwardTo([])",
    async (plane) => {
      const relay = planeRelay(plane);
      const alice = new TestClient({ opusPayloadType: 111 });
      const bob = new TestClient({ opusPayloadType: 96 });
      const { leg: legA, answerSdp: answerA } = await connect(relay, "fwd-a", alice);
      const { leg: legB, answerSdp: answerB } = await connect(relay, "fwd-b", bob);
      alice.startSending(0xa1);
      bob.startSending(0xb2);

      await waitFor(() => legA.counters.packetsIn >= 10 && legB.counters.packetsIn >= 10, "the relay receiving both");
      await sleep(200);
      assert.equal(alice.received.length, 0, "nothing reaches Alice before forwardTo");
      assert.equal(bob.received.length, 0, "nothing reaches Bob before forwardTo");
      assert.equal(relay.stats().packetsForwarded, 0);

      legA.forwardTo([legB]);
      legB.forwardTo([legA]);
      await waitFor(() => bob.countOf(0xa1) >= 10 && alice.countOf(0xb2) >= 10, "audio both ways");
      assert.deepEqual(bob.markers(), [0xa1]);
      assert.deepEqual(alice.markers(), [0xb2]);
      for (const rtp of bob.received) {
        assert.equal(rtp.header.payloadType, 96, "Bob gets his own Opus payload type");
        assert.equal(rtp.header.ssrc, ssrcOf(answerB), "Bob gets the SSRC his answer announced");
        assert.equal(rtp.payload.length, PAYLOAD_BYTES);
      }
      for (const rtp of alice.received) {
        assert.equal(rtp.header.payloadType, 111);
        assert.equal(rtp.header.ssrc, ssrcOf(answerA));
      }
      const stats = relay.stats();
      assert.equal(stats.legs, 2);
      assert.ok(stats.packetsForwarded >= 20);
      assert.equal(stats.bytesForwarded, stats.packetsForwarded * PAYLOAD_BYTES);
      assert.ok(legB.counters.packetsOut >= 10);
      assert.ok(Date.now() - legA.counters.lastPacketAt < 1000);

      legA.forwardTo([]);
      legB.forwardTo([]);
      await sleep(100); // packets already on the wire
      const [toAlice, toBob, inA] = [alice.received.length, bob.received.length, legA.counters.packetsIn];
      await sleep(400);
      assert.equal(alice.received.length, toAlice, "nothing more reaches Alice");
      assert.equal(bob.received.length, toBob, "nothing more reaches Bob");
      assert.ok(legA.counters.packetsIn > inA, "the relay still receives; it just forwards nowhere");
      relay.close();
    },
  );

  planeIt("keeps three calls apart: each of six receivers hears only its own peer", async (plane) => {
    const relay = planeRelay(plane);
    const markers = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66];
    const parties: { client: TestClient; leg: MediaLeg; marker: number }[] = [];
    for (const [i, marker] of markers.entries()) {
      const client = new TestClient({ opusPayloadType: i % 2 === 0 ? 111 : 96 });
      const { leg } = await connect(relay, `pair-${i}`, client);
      parties.push({ client, leg, marker });
    }
    const peerOf = (i: number) => parties[i ^ 1]!;
    for (const [i, party] of parties.entries()) party.leg.forwardTo([peerOf(i).leg]);
    for (const party of parties) party.client.startSending(party.marker);

    await waitFor(
      () => parties.every((party, i) => party.client.countOf(peerOf(i).marker) >= 10),
      "every party hearing its peer",
    );
    for (const [i, party] of parties.entries()) {
      assert.deepEqual(party.client.markers(), [peerOf(i).marker], `party ${i} hears only party ${i ^ 1}`);
    }
    assert.equal(relay.stats().legs, 6);
    relay.close();
  });

  planeIt("continues the outgoing sequence numbers and timestamps when a leg's source changes", async (plane) => {
    const relay = planeRelay(plane);
    const alice = new TestClient({ firstSeq: 1000 });
    const bob = new TestClient();
    const carol = new TestClient({ firstSeq: 50_000 });
    const { leg: legA } = await connect(relay, "switch-a", alice);
    const { leg: legB } = await connect(relay, "switch-b", bob);
    const { leg: legC } = await connect(relay, "switch-c", carol);
    alice.startSending(0xa1);
    carol.startSending(0xc3);
    legA.forwardTo([legB]);
    await waitFor(() => bob.countOf(0xa1) >= 5, "Bob hearing Alice");
    legA.forwardTo([]);
    legC.forwardTo([legB]);
    await waitFor(() => bob.countOf(0xc3) >= 5, "Bob hearing Carol");

    const first = bob.received.findIndex((rtp) => rtp.payload[0] === 0xc3);
    const before = bob.received[first - 1]!.header;
    const switched = bob.received[first]!.header;
    assert.equal(switched.ssrc, before.ssrc, "one outgoing stream");
    assert.equal(switched.sequenceNumber, (before.sequenceNumber + 1) & 0xffff, "no sequence jump");
    const step = (switched.timestamp - before.timestamp) >>> 0;
    assert.ok(step >= 960 && step <= 48 * 1000, `timestamp advances by the real gap (${step} ticks)`);
    const next = bob.received[first + 1]!.header;
    assert.equal(next.sequenceNumber, (switched.sequenceNumber + 1) & 0xffff);
    relay.close();
  });

  planeIt(
    "closes a leg once, drops it from the relay and from other legs' targets; relay.close() closes the rest",
    async (plane) => {
      const relay = planeRelay(plane);
      const alice = new TestClient();
      const bob = new TestClient();
      const { leg: legA } = await connect(relay, "close-a", alice);
      const { leg: legB } = await connect(relay, "close-b", bob);
      let closedA = 0;
      let closedB = 0;
      const statesA: MediaLegState[] = [];
      legA.on("closed", () => closedA++);
      legA.on("stateChange", (state) => statesA.push(state));
      legB.on("closed", () => closedB++);
      legB.forwardTo([legA]);
      bob.startSending(0xb2);
      await waitFor(() => alice.countOf(0xb2) >= 5, "Alice hearing Bob");

      legA.close();
      legA.close();
      assert.equal(closedA, 1, "closed is emitted once");
      assert.deepEqual(statesA, ["closed"]);
      assert.equal(legA.state, "closed");
      assert.equal(relay.stats().legs, 1);
      const forwarded = relay.stats().packetsForwarded;
      const inB = legB.counters.packetsIn;
      await sleep(300);
      assert.ok(legB.counters.packetsIn > inB, "Bob still sends");
      assert.equal(relay.stats().packetsForwarded, forwarded, "nothing is forwarded to the closed leg");

      relay.close();
      relay.close();
      assert.equal(closedB, 1);
      assert.equal(legB.state, "closed");
      assert.equal(relay.stats().legs, 0);
      await assert.rejects(relay.createLeg("late", await new TestClient().offer()), { code: "MEDIA_FAILED" });
    },
  );

  it("refuses offers without Opus audio, and media configs that cannot work", async () => {
    const relay = newRelay();
    const video = await new TestClient({ video: true }).offer();
    await assert.rejects(relay.createLeg("video", video), { code: "BAD_PARAMS" });
    const pcmu = await new TestClient({ pcmuOnly: true }).offer();
    await assert.rejects(relay.createLeg("pcmu", pcmu), { code: "BAD_PARAMS" });
    await assert.rejects(relay.createLeg("junk", "hello"), { code: "BAD_PARAMS" });
    assert.equal(relay.stats().legs, 0);
    relay.close();

    assert.throws(() => new MediaRelay({ ip: IP, portMin: 40000, portMax: 40000 }, logger), /two ports/);
    assert.throws(() => new MediaRelay({ ip: "0.0.0.0", portMin: 40000, portMax: 40100 }, logger), /wildcard/);
    assert.throws(() => new MediaRelay({ ip: "media.example", portMin: 40000, portMax: 40100 }, logger), /not an IP/);
  });

  it("lets a replacement leg share its id with the leg it replaces", async () => {
    const relay = newRelay();
    const { leg: old } = await relay.createLeg("call-1:7", await new TestClient().offer());
    const { leg: replacement } = await relay.createLeg("call-1:7", await new TestClient().offer());
    assert.notEqual(old, replacement);
    assert.equal(relay.stats().legs, 2);
    old.close();
    assert.equal(relay.stats().legs, 1);
    assert.equal(replacement.state, "connecting");
    relay.close();
  });

  planeIt("sends one leg's audio to every target given, each with its own SSRC and payload type", async (plane) => {
    const relay = planeRelay(plane);
    const alice = new TestClient();
    const bob = new TestClient({ opusPayloadType: 96 });
    const carol = new TestClient({ opusPayloadType: 111 });
    const { leg: legA } = await connect(relay, "fan-a", alice);
    const { leg: legB, answerSdp: answerB } = await connect(relay, "fan-b", bob);
    const { leg: legC, answerSdp: answerC } = await connect(relay, "fan-c", carol);
    legA.forwardTo([legB, legC]);
    alice.startSending(0xa1);
    await waitFor(() => bob.countOf(0xa1) >= 10 && carol.countOf(0xa1) >= 10, "Bob and Carol hearing Alice");
    assert.ok(bob.received.every((rtp) => rtp.header.payloadType === 96 && rtp.header.ssrc === ssrcOf(answerB)));
    assert.ok(carol.received.every((rtp) => rtp.header.payloadType === 111 && rtp.header.ssrc === ssrcOf(answerC)));
    alice.stopSending();
    await sleep(200); // the native plane's media thread counts as it sends: let it finish
    assert.equal(legB.counters.packetsOut + legC.counters.packetsOut, relay.stats().packetsForwarded);
    assert.equal(legA.counters.packetsIn, legB.counters.packetsOut, "every packet of Alice's forwarded to Bob");
    relay.close();
  });

  it("fails with MEDIA_FAILED while every port in the range is taken, and uses ports as they come free", async () => {
    const { ports, sockets } = await holdPortPair();
    const relay = newRelay({ portMin: ports[0], portMax: ports[1] });
    await assert.rejects(relay.createLeg("full-1", await new TestClient().offer()), { code: "MEDIA_FAILED" });
    assert.equal(relay.stats().legs, 0);

    await closeSocket(sockets[0]!);
    const { leg, answerSdp } = await relay.createLeg("full-2", await new TestClient().offer());
    assert.deepEqual(
      candidatesOf(answerSdp).map((c) => c.port),
      [ports[0]],
    );
    leg.close();
    const offer = await new TestClient().offer();
    const again = await waitFor(() => relay.createLeg("full-3", offer), "the port freed by the closed leg");
    assert.deepEqual(
      candidatesOf(again.answerSdp).map((c) => c.port),
      [ports[0]],
    );
    await closeSocket(sockets[1]!);
    relay.close();
  });

  it("fails and closes a leg whose client never connects", async () => {
    const relay = newRelay(undefined, 300);
    const { leg } = await relay.createLeg("silent", await new TestClient().offer());
    const states: MediaLegState[] = [];
    leg.on("stateChange", (state) => states.push(state));
    await waitFor(() => leg.state === "closed", "the leg closed");
    assert.deepEqual(states, ["failed", "closed"]);
    assert.equal(relay.stats().legs, 0);
    relay.close();
  });

  planeIt(
    "answers an offer with several audio m-lines on one port and sends a different leg's audio on each slot",
    async (plane) => {
      const relay = planeRelay(plane);
      const listener = new TestClient({ slots: 3 });
      const speakers = [new TestClient(), new TestClient(), new TestClient()];
      const { leg, answerSdp } = await connect(relay, "slots-listener", listener);
      assert.equal(leg.slotCount, 3);
      assert.equal(answerSdp.match(/^m=audio /gm)?.length, 3, "one answered m-line per offered one");
      assert.deepEqual(
        [...new Set(candidatesOf(answerSdp).map((c) => c.port))].length,
        1,
        "the m-lines are bundled on one port",
      );
      const legs: MediaLeg[] = [];
      for (const [i, speaker] of speakers.entries())
        legs.push((await connect(relay, `slots-speaker-${i}`, speaker)).leg);
      for (const [i, speakerLeg] of legs.entries()) leg.route(i, speakerLeg);
      assert.deepEqual(leg.slotSources, legs);
      for (const [i, speaker] of speakers.entries()) speaker.startSending(0xc0 + i);
      await waitFor(
        () => listener.receivedBySlot.every((packets) => packets.length >= 10),
        "every slot carrying audio",
      );
      for (const [slot, packets] of listener.receivedBySlot.entries()) {
        assert.deepEqual(
          [...new Set(packets.map((rtp) => rtp.payload[0]))],
          [0xc0 + slot],
          `slot ${slot} carries one speaker`,
        );
      }
      assert.equal(
        new Set(listener.receivedBySlot.map((packets) => packets[0]?.header.ssrc)).size,
        3,
        "one SSRC per slot",
      );
      assert.throws(() => leg.route(3, legs[0]!), RangeError);

      // A closing source leaves its slot silent, the other slots go on.
      legs[1]!.close();
      assert.deepEqual(leg.slotSources, [legs[0], null, legs[2]]);
      relay.close();
    },
  );

  planeIt("keeps relaying when junk datagrams that look like the client's RTP hit a leg's port", async (plane) => {
    const relay = planeRelay(plane);
    const alice = new TestClient();
    const bob = new TestClient();
    const { leg: legA, answerSdp } = await connect(relay, "junk-a", alice);
    const { leg: legB } = await connect(relay, "junk-b", bob);
    legA.forwardTo([legB]);
    alice.startSending(0xa1);
    await waitFor(() => bob.countOf(0xa1) >= 10, "Bob hearing Alice");
    // RTP-shaped datagrams carrying Alice's declared SSRC (so they get past the SSRC filter), with
    // random flags, extension and CSRC counts, lengths and bytes, from another socket.
    const ssrc = ssrcOf(alice.pc.localDescription?.sdp ?? "");
    const port = candidatesOf(answerSdp)[0]!.port;
    const sendJunk = async (socket: dgram.Socket, count: number) => {
      for (let i = 0; i < count; i++) {
        const junk = randomBytes(12 + Math.floor(Math.random() * 80));
        junk[0] = 0x80 | (junk[0]! & 0x3f);
        junk[1] = junk[1]! & 0x7f;
        junk.writeUInt32BE(ssrc, 8);
        await new Promise<void>((resolve) => socket.send(junk, port, IP, () => resolve()));
        // Paced, so the relay's socket buffer never overflows (each one must arrive to be counted).
        if (i % 25 === 24) await sleep(20);
      }
    };
    const socket = dgram.createSocket("udp4");
    await sendJunk(socket, 300);
    socket.close();
    const before = bob.countOf(0xa1);
    await waitFor(() => bob.countOf(0xa1) >= before + 20, "Bob still hearing Alice after the junk");
    assert.equal(legA.state, "connected");
    if (plane !== "werift") {
      // The same from Alice's own socket, the selected pair: the data plane itself checks each one
      // (werift's own path drops what fails to decrypt without counting it).
      // (Drops from the selected pair only: the foreign junk's wrong_source may still be counting.)
      const dropped = () => {
        const { wrong_source: _, ...fromThePair } = relay.drops();
        return Object.values(fromThePair).reduce((sum, n) => sum + n, 0);
      };
      const start = dropped();
      await sendJunk(nominatedPath(alice.pc)!.socket, 300);
      await waitFor(() => dropped() - start >= 300, "the junk from Alice's own socket dropped");
      assert.equal(dropped() - start, 300, "each one dropped once");
      const now = bob.countOf(0xa1);
      await waitFor(() => bob.countOf(0xa1) >= now + 20, "Bob still hearing Alice after the junk from her socket");
    }
    alice.stopSending();
    relay.close();
  });

  it("refuses offers with too many or non-audio m-lines", async () => {
    const relay = newRelay();
    await assert.rejects(relay.createLeg("nine", await new TestClient({ slots: 9 }).offer()), { code: "BAD_PARAMS" });
    await assert.rejects(relay.createLeg("unbundled", await new TestClient({ slots: 2, bundle: false }).offer()), {
      code: "BAD_PARAMS",
      message: /BUNDLE/,
    });
    relay.close();
  });

  planeIt("tells when a client speaks from its RFC 6464 audio levels, with hysteresis", async (plane) => {
    const relay = planeRelay(plane);
    const client = new TestClient({ audioLevel: true });
    const { leg, answerSdp } = await connect(relay, "level", client);
    assert.match(answerSdp, /^a=extmap:\d+ urn:ietf:params:rtp-hdrext:ssrc-audio-level\r?$/m);
    const changes: boolean[] = [];
    leg.on("speaking", (speaking) => changes.push(speaking));
    client.level = 20;
    client.startSending(0x01);
    await waitFor(() => leg.speaking, "speaking from loud packets");
    assert.ok(leg.loudness > 60, `loudness ${leg.loudness}`);
    client.level = 127;
    await waitFor(() => !leg.speaking, "quiet again from silent packets");
    assert.deepEqual(changes, [true, false]);
    client.stopSending();
    relay.close();
  });
});

describe("werift fixes", () => {
  it("a DTLS client ignores a repeated HelloVerifyRequest once it has answered it", () => {
    // @parley/rtc applies the fix on load (it was imported above).
    const socket = Object.create(DtlsSocket.prototype) as {
      bufferFragmentedHandshakes: unknown[];
      sessionType: number;
      dtls: { flight: number };
      handleFragmentHandshake(messages: unknown[]): unknown[];
    };
    socket.bufferFragmentedHandshakes = [];
    socket.sessionType = 1; // client
    const helloVerifyRequest = { msg_type: 3, fragment_length: 20, length: 20, fragment_offset: 0 };
    const serverHello = { msg_type: 2, fragment_length: 20, length: 20, fragment_offset: 0 };
    socket.dtls = { flight: 1 };
    assert.deepEqual(
      socket.handleFragmentHandshake([helloVerifyRequest]),
      [helloVerifyRequest],
      "the first one counts",
    );
    socket.dtls = { flight: 3 };
    assert.deepEqual(
      socket.handleFragmentHandshake([helloVerifyRequest, serverHello]),
      [serverHello],
      "a repeat is dropped",
    );
    socket.sessionType = 2; // a server never gets one; left alone
    assert.deepEqual(socket.handleFragmentHandshake([helloVerifyRequest]), [helloVerifyRequest]);
  });
});

describe("speaker selection", () => {
  const a = { name: "a" };
  const b = { name: "b" };
  const c = { name: "c" };
  const d = { name: "d" };
  const loud = new Map([
    [a, 10],
    [b, 50],
    [c, 30],
    [d, 90],
  ]);
  const level = (x: { name: string }) => loud.get(x) ?? 0;

  it("gives every source a slot when there are enough, keeping the slots sources already have", () => {
    assert.deepEqual(assignSlots([null, null, null], [a, b], level), [b, a, null], "loudest first");
    assert.deepEqual(assignSlots([null, b, null], [a, b, c], level), [c, b, a]);
    assert.deepEqual(assignSlots([a, b, c], [b], level), [null, b, null], "sources that left free their slots");
  });

  it("hears the loudest when there are more sources than slots, and swaps only for a clearly louder one", () => {
    assert.deepEqual(assignSlots([null, null], [a, b, c, d], level), [d, b]);
    assert.deepEqual(assignSlots([a, b], [a, b, c, d], level), [d, b], "d replaces the quietest (a)");
    assert.deepEqual(assignSlots([c, b], [a, b, c], level, 25), [c, b], "a is not louder than c by the margin");
  });
});

const GCM = 0x0007; // AEAD_AES_128_GCM
const AES_CM = 0x0001; // AES_CM_128_HMAC_SHA1_80

/** Whether `seqs` go up by one each, modulo 2^16. */
function consecutive(seqs: number[]): boolean {
  return seqs.every((seq, i) => i === 0 || seq === ((seqs[i - 1]! + 1) & 0xffff));
}

describe("media relay data planes", () => {
  for (const profile of [GCM, AES_CM]) {
    planeIt(
      `relays once connected, with SRTP profile ${profile === GCM ? "AEAD_AES_128_GCM" : "AES_CM_128_HMAC_SHA1_80"}`,
      async (plane) => {
        const relay = planeRelay(plane);
        const alice = new TestClient({ srtpProfile: profile, opusPayloadType: 111 });
        const bob = new TestClient({ srtpProfile: profile, opusPayloadType: 96 });
        const { leg: legA, answerSdp: answerA } = await connect(relay, `plane-a-${profile}`, alice);
        const { leg: legB, answerSdp: answerB } = await connect(relay, `plane-b-${profile}`, bob);
        assert.equal(alice.srtpProfile(), profile);
        assert.equal(bob.srtpProfile(), profile);
        legA.forwardTo([legB]);
        legB.forwardTo([legA]);
        alice.startSending(0xa1);
        bob.startSending(0xb2);
        await waitFor(() => bob.countOf(0xa1) >= 10 && alice.countOf(0xb2) >= 10, "audio both ways");
        for (const [client, marker, answer, payloadType] of [
          [bob, 0xa1, answerB, 96],
          [alice, 0xb2, answerA, 111],
        ] as const) {
          assert.deepEqual(client.markers(), [marker]);
          for (const rtp of client.received) {
            assert.equal(rtp.header.ssrc, ssrcOf(answer));
            assert.equal(rtp.header.payloadType, payloadType);
            assert.deepEqual(rtp.payload, Buffer.alloc(PAYLOAD_BYTES, marker), "the payload arrives intact");
          }
          assert.ok(consecutive(client.received.map((rtp) => rtp.header.sequenceNumber)));
        }
        relay.close();
      },
      ["native", "js"],
    );
  }

  for (const plane of DATA_PLANES) {
    it(`measures each leg's quality: loss from sequence gaps, jitter, and the round trip from receiver reports on the relay's sender reports (${plane} data plane)`, async () => {
      const relay = planeRelay(plane);
      const alice = new TestClient();
      const bob = new TestClient();
      const { leg: legA } = await connect(relay, "quality-a", alice);
      const { leg: legB } = await connect(relay, "quality-b", bob);
      legA.forwardTo([legB]);
      legB.forwardTo([legA]);
      alice.startSending(0xa1);
      bob.startSending(0xb2);
      await waitFor(() => legA.counters.packetsIn >= 10, "Alice's first packets at the relay");
      alice.lose(5);
      await waitFor(() => bob.countOf(0xa1) >= 30, "Bob hearing Alice after the gap");
      // The relay's sender reports reach each client, whose receiver reports give the round trip.
      const quality = await waitFor(
        async () => {
          const q = await legB.quality();
          return q.roundTripMs !== null ? q : null;
        },
        "a round trip on Bob's leg",
        { timeoutMs: 10_000, intervalMs: 200 },
      );
      assert.ok(quality.roundTripMs! > 0 && quality.roundTripMs! < 200, `round trip ${quality.roundTripMs} ms`);
      const a = await legA.quality();
      assert.equal(a.packetsLost, 5, "the five sequence numbers Alice skipped");
      assert.equal(quality.packetsLost, 0);
      assert.ok(a.jitterMs !== null && a.jitterMs >= 0 && a.jitterMs < 20, `jitter ${a.jitterMs} ms`);
      alice.stopSending();
      bob.stopSending();
      relay.close();
    });

    it(`carries audio across a sequence number wrap (SRTP rollover counter), to a slot routed before it and one routed after it (${plane} data plane)`, async () => {
      const relay = planeRelay(plane);
      const alice = new TestClient({ firstSeq: 65_510 });
      const bob = new TestClient();
      const carol = new TestClient();
      const { leg: legA } = await connect(relay, "wrap-a", alice);
      const { leg: legB } = await connect(relay, "wrap-b", bob);
      const { leg: legC } = await connect(relay, "wrap-c", carol);
      legA.forwardTo([legB]);
      alice.startSending(0xa1);
      // 26 packets to the wrap; Bob hears on well past it (the relay decrypted Alice's packets with
      // rollover counter 1 and encrypted Bob's with 1 too, else neither would authenticate).
      await waitFor(() => bob.countOf(0xa1) >= 50, "Bob hearing Alice across the wrap");
      const seqs = bob.received.map((rtp) => rtp.header.sequenceNumber);
      assert.ok(seqs.includes(65_535) && seqs.includes(0), `Bob's stream wrapped (${seqs[0]}..${seqs.at(-1)})`);
      assert.ok(consecutive(seqs), "no packet lost at the wrap");

      // Carol's stream starts after Alice's wrapped: its rollover counter must start at 0 for her.
      legA.forwardTo([legB, legC]);
      await waitFor(() => carol.countOf(0xa1) >= 20, "Carol hearing Alice after the wrap");
      assert.ok(consecutive(carol.received.map((rtp) => rtp.header.sequenceNumber)));
      alice.stopSending();
      relay.close();
    });

    it(`continues a conference slot's numbering when route() switches its source, with the slot's SSRC and payload type (${plane} data plane)`, async () => {
      const relay = planeRelay(plane);
      const listener = new TestClient({ slots: 2, opusPayloadType: 96 });
      const alice = new TestClient({ firstSeq: 1000 });
      const bob = new TestClient({ firstSeq: 40_000 });
      const { leg, answerSdp } = await connect(relay, "reroute-listener", listener);
      const { leg: legA } = await connect(relay, "reroute-a", alice);
      const { leg: legB } = await connect(relay, "reroute-b", bob);
      alice.startSending(0xa1);
      bob.startSending(0xb2);
      leg.route(1, legA);
      const slot = listener.receivedBySlot[1]!;
      await waitFor(() => slot.length >= 5, "slot 1 carrying Alice");
      leg.route(1, legB);
      await waitFor(() => slot.filter((rtp) => rtp.payload[0] === 0xb2).length >= 5, "slot 1 carrying Bob");
      leg.route(1, legA);
      const afterBob = () => slot.length - 1 - slot.findLastIndex((rtp) => rtp.payload[0] === 0xb2);
      await waitFor(() => afterBob() >= 5, "slot 1 carrying Alice again");

      const slotSsrc = [...answerSdp.matchAll(/^a=ssrc:(\d+) /gm)].map((m) => Number(m[1]))[1];
      assert.ok(slot.every((rtp) => rtp.header.ssrc === slotSsrc && rtp.header.payloadType === 96));
      assert.ok(consecutive(slot.map((rtp) => rtp.header.sequenceNumber)), "no sequence jump at either switch");
      for (let i = 1; i < slot.length; i++) {
        const step = (slot[i]!.header.timestamp - slot[i - 1]!.header.timestamp) >>> 0;
        assert.ok(step >= 960 && step <= 48 * 1000, `timestamps advance by the real gap (${step} ticks at ${i})`);
      }
      assert.equal(listener.receivedBySlot[0]!.length, 0, "slot 0 stays silent");
      relay.close();
    });
  }

  const PAIRS = [
    ["native", "js"],
    ["native", "werift"],
    ["js", "werift"],
  ] as const;
  for (const [first, second] of PAIRS) {
    it(`forwards between a ${first}-plane leg and a ${second}-plane leg of one relay, both ways`, async () => {
      const relay = planeRelay("native");
      const alice = new TestClient({ opusPayloadType: 111 });
      const bob = new TestClient({ opusPayloadType: 96 });
      const { leg: legA, answerSdp: answerA } = await connect(relay, "mixed-a", alice, first);
      const { leg: legB, answerSdp: answerB } = await connect(relay, "mixed-b", bob, second);
      legA.forwardTo([legB]);
      legB.forwardTo([legA]);
      alice.startSending(0xa1);
      bob.startSending(0xb2);
      await waitFor(() => bob.countOf(0xa1) >= 10 && alice.countOf(0xb2) >= 10, "audio both ways");
      assert.ok(bob.received.every((rtp) => rtp.header.ssrc === ssrcOf(answerB) && rtp.header.payloadType === 96));
      assert.ok(alice.received.every((rtp) => rtp.header.ssrc === ssrcOf(answerA) && rtp.header.payloadType === 111));
      assert.deepEqual([alice.markers(), bob.markers()], [[0xb2], [0xa1]]);
      assert.ok(consecutive(alice.received.map((rtp) => rtp.header.sequenceNumber)));
      assert.ok(consecutive(bob.received.map((rtp) => rtp.header.sequenceNumber)));
      alice.stopSending();
      bob.stopSending();
      await sleep(200);
      const stats = relay.stats();
      assert.equal(
        stats.packetsForwarded,
        legA.counters.packetsOut + legB.counters.packetsOut,
        "each leg's sends counted once",
      );
      assert.equal(legA.counters.packetsIn, legB.counters.packetsOut, "Alice's packets all reached Bob's leg");
      assert.equal(legB.counters.packetsIn, legA.counters.packetsOut, "Bob's packets all reached Alice's leg");
      relay.close();
    });
  }

  for (const listenerPlane of ["native", "js"] as const) {
    it(`switches a conference slot of a ${listenerPlane}-plane listener between speakers on every plane, its numbering continuous`, async () => {
      const relay = planeRelay("native");
      const listener = new TestClient({ slots: 2, opusPayloadType: 96 });
      const { leg, answerSdp } = await connect(relay, "planes-listener", listener, listenerPlane);
      const speakers: { plane: DataPlane; leg: MediaLeg; marker: number }[] = [];
      for (const [i, plane] of DATA_PLANES.entries()) {
        const client = new TestClient({ firstSeq: 1000 + 20_000 * i });
        const { leg: speakerLeg } = await connect(relay, `planes-speaker-${plane}`, client, plane);
        client.startSending(0xd0 + i);
        speakers.push({ plane, leg: speakerLeg, marker: 0xd0 + i });
      }
      const slot = listener.receivedBySlot[1]!;
      // Every speaker in turn, and back to the first: each change of plane at least once.
      for (const speaker of [...speakers, speakers[0]!]) {
        leg.route(1, speaker.leg);
        const count = () => slot.length - 1 - slot.findLastIndex((rtp) => rtp.payload[0] !== speaker.marker);
        await waitFor(() => count() >= 5, `slot 1 carrying the ${speaker.plane}-plane speaker`);
      }
      leg.route(0, speakers[2]!.leg);
      await waitFor(() => listener.receivedBySlot[0]!.length >= 5, "slot 0 carrying the werift-plane speaker");

      const slotSsrc = [...answerSdp.matchAll(/^a=ssrc:(\d+) /gm)].map((m) => Number(m[1]))[1];
      assert.ok(slot.every((rtp) => rtp.header.ssrc === slotSsrc && rtp.header.payloadType === 96));
      assert.ok(consecutive(slot.map((rtp) => rtp.header.sequenceNumber)), "no sequence jump at any switch");
      for (let i = 1; i < slot.length; i++) {
        const step = (slot[i]!.header.timestamp - slot[i - 1]!.header.timestamp) >>> 0;
        assert.ok(step >= 960 && step <= 48 * 1000, `timestamps advance by the real gap (${step} ticks at ${i})`);
      }
      relay.close();
    });
  }

  it("takes legs off the native plane as they close under load, and leaves no native leg or thread behind", async () => {
    const native = loadNativePlane();
    assert.equal(typeof native, "object", `the native plane loads (${native})`);
    const counts = () => (native as Exclude<typeof native, string>).counts();
    // The addon frees a leg's and a plane's memory once JavaScript has let go of their handles.
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const held = (planes: number, legs: number) => () => {
      gc();
      const now = counts();
      return now.planes === planes && now.legs === legs;
    };
    // What earlier tests closed is freed first: the counts settle.
    let before = counts();
    for (let settled = 0; settled < 3; ) {
      gc();
      await sleep(50);
      const now = counts();
      settled = now.planes === before.planes && now.legs === before.legs ? settled + 1 : 0;
      before = now;
    }
    const relay = planeRelay("native");
    const parties: { client: TestClient; leg: MediaLeg }[] = [];
    for (let i = 0; i < 6; i++) {
      const client = new TestClient();
      parties.push({ client, leg: (await connect(relay, `leak-${i}`, client, undefined, "leak")).leg });
    }
    assert.deepEqual(counts(), { planes: before.planes + 1, legs: before.legs + 6 });
    // Everyone hears the next party: each leg both a source and a target.
    for (const [i, { leg }] of parties.entries()) leg.forwardTo([parties[(i + 1) % parties.length]!.leg]);
    for (const [i, { client }] of parties.entries()) client.startSending(0x70 + i);
    await waitFor(() => parties.every(({ client }) => client.received.length >= 10), "audio around the ring");
    // Closed while packets flow to and from them.
    parties[0]!.leg.close();
    parties[3]!.leg.close();
    await waitFor(held(before.planes + 1, before.legs + 4), "two legs off the plane and freed");
    const heard = parties[2]!.client.received.length;
    await waitFor(() => parties[2]!.client.received.length >= heard + 10, "the remaining legs still relaying");
    relay.close();
    await waitFor(held(before.planes, before.legs), "no native leg or plane left once the relay closed");
  });

  it("puts the legs of one call on one media thread, and a new call on the least loaded thread; both calls have audio", async () => {
    const relay = planeRelay("native", { mediaThreads: 2 });
    const clients = [0, 1, 2, 3].map(() => new TestClient());
    const legs: MediaLeg[] = [];
    for (const [i, client] of clients.entries()) {
      legs.push((await connect(relay, `threads-${i}`, client, undefined, `call-${i >> 1}`)).leg);
    }
    const [a, b, c, d] = legs as [MediaLeg, MediaLeg, MediaLeg, MediaLeg];
    assert.equal(a.mediaThread, b.mediaThread, "both legs of the first call on one thread");
    assert.equal(c.mediaThread, d.mediaThread, "both legs of the second call on one thread");
    assert.notEqual(a.mediaThread, c.mediaThread, "the second call on the other thread");
    assert.deepEqual(relay.mediaThreadLoad(), [2, 2]);
    a.forwardTo([b]);
    b.forwardTo([a]);
    c.forwardTo([d]);
    d.forwardTo([c]);
    for (const [i, client] of clients.entries()) client.startSending(0xe0 + i);
    await waitFor(
      () => clients.every((client, i) => client.countOf(0xe0 + (i ^ 1)) >= 20),
      "every party of both calls hearing its peer",
    );
    for (const [i, client] of clients.entries()) assert.deepEqual(client.markers(), [0xe0 + (i ^ 1)]);
    relay.close();
  });
});

describe("SRTP crypto", () => {
  it("seals and opens AES-128-GCM exactly as node:crypto does, without a cipher object per message", () => {
    for (let trial = 0; trial < 300; trial++) {
      const key = randomBytes(16);
      const iv = randomBytes(12);
      const aad = randomBytes(trial % 41);
      const plaintext = randomBytes(trial % 301);
      const reference = createCipheriv("aes-128-gcm", key, iv);
      reference.setAAD(aad);
      const expected = Buffer.concat([reference.update(plaintext), reference.final()]);
      const expectedTag = reference.getAuthTag();
      const gcm = new AesGcm(ecbCipher(key));
      const [ciphertext, tag] = gcm.seal(iv, aad, plaintext);
      assert.deepEqual(ciphertext, expected, `ciphertext, trial ${trial}`);
      assert.deepEqual(tag, expectedTag, `tag, trial ${trial}`);
      assert.deepEqual(gcm.open(iv, aad, ciphertext, tag), plaintext);
      const forged = Buffer.from(tag);
      forged[trial % 16]! ^= 1;
      assert.equal(gcm.open(iv, aad, ciphertext, forged), null, "a wrong tag does not open");
    }
  });
});
