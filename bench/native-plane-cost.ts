/**
 * CPU per forwarded packet of the native data plane's media thread, for each SRTP profile: a
 * client floods SRTP on loopback into leg A, whose audio is routed to slot 0 of leg B, which
 * re-encrypts it and sends it to a second client. The cost is the media thread's own CPU
 * (/proc/self/task/<tid>/schedstat, nanoseconds on CPU; user and system split from .../stat) over
 * the packets leg B sent. On loopback the thread's system time includes the receiving socket's
 * softirq (the kernel runs it in the sender's context), so the user time is the plane's own work:
 * authenticate, decrypt, route, re-encrypt. Not part of `npm run bench`; a probe to rerun when the
 * plane's per-packet path changes.
 *
 *   node packages/rtc/native/build.mjs && node --import tsx bench/native-plane-cost.ts [--rate 20000] [--seconds 5] [--profile gcm|cm] [--addon FILE]
 */
import { createCipheriv, randomBytes } from "node:crypto";
import dgram, { type Socket } from "node:dgram";
import fs from "node:fs";
import {
  loadNativePlane,
  NativeLegStat,
  PROFILE_AEAD_AES_128_GCM,
  PROFILE_AES128_CM_SHA1_80,
  RTP_FIXED_HEADER_BYTES,
  type SrtpKeys,
  SrtpSender,
  udpHandleOf,
  writeAudioLevelExtension,
  writeRtpHeader,
} from "@parley/rtc";

const IP = "127.0.0.1";
const PAYLOAD_BYTES = 100;
const AUDIO_LEVEL_ID = 1;

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at > 0 ? (process.argv[at + 1] ?? fallback) : fallback;
}

const rate = Number(option("--rate", "20000"));
const seconds = Number(option("--seconds", "5"));
const only = option("--profile", "both");
/** Another build of the addon (e.g. an older one kept aside, to compare the two under the same load). */
const addon = option("--addon", "") || undefined;

interface MasterKeys {
  masterKey: Buffer;
  masterSalt: Buffer;
}

/** RFC 3711 4.3.1 (key derivation rate 0): the AES-CM keystream of the master key from (label << 48) XOR salt. */
function derive(keys: MasterKeys, label: number, length: number): Buffer {
  const iv = Buffer.alloc(16);
  keys.masterSalt.copy(iv, 0, 0, Math.min(14, keys.masterSalt.length));
  iv[7]! ^= label;
  return createCipheriv("aes-128-ctr", keys.masterKey, iv).update(Buffer.alloc(length));
}

function sessionKeys(profile: number, keys: MasterKeys): SrtpKeys {
  const gcm = profile === PROFILE_AEAD_AES_128_GCM;
  return { profile, key: derive(keys, 0, 16), salt: derive(keys, 2, gcm ? 12 : 14), authKey: derive(keys, 1, 20) };
}

function masterKeys(profile: number): MasterKeys {
  return { masterKey: randomBytes(16), masterSalt: randomBytes(profile === PROFILE_AEAD_AES_128_GCM ? 12 : 14) };
}

async function bound(): Promise<Socket> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, IP, resolve));
  return socket;
}

/** The media thread's CPU so far: ns on CPU (schedstat) and clock ticks in user and system mode (stat). */
function threadCpu(tid: string): { ns: number; user: number; system: number } {
  const ns = Number(fs.readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ")[0]);
  const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { ns, user: Number(fields[11]), system: Number(fields[12]) };
}

/** The media thread's id (it names itself once it runs). */
async function mediaThread(index: number): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    for (const tid of fs.readdirSync("/proc/self/task")) {
      if (fs.readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim() === `parley-media-${index}`) return tid;
    }
    await sleep(10);
  }
  throw new Error(`no thread parley-media-${index}`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function measure(profile: number, name: string): Promise<void> {
  const module = loadNativePlane(addon);
  if (typeof module === "string") throw new Error(module);
  const plane = module.createPlane(1);
  const tid = await mediaThread(0);
  const sender = await bound();
  const receiver = await bound();
  const relayA = await bound();
  const relayB = await bound();
  let received = 0;
  receiver.on("message", () => received++);
  const clientKeys = masterKeys(profile);
  const ssrc = randomBytes(4).readUInt32BE(0);
  const legOf = (relay: Socket, client: Socket, remote: MasterKeys) => {
    const handle = udpHandleOf(relay);
    if (typeof handle === "string") throw new Error(handle);
    handle.recvStop();
    return plane.addLeg({
      thread: 0,
      fd: handle.fd,
      remoteAddress: IP,
      remotePort: client.address().port,
      profile,
      local: masterKeys(profile),
      remote,
      ssrcs: [ssrc],
      audioLevelId: AUDIO_LEVEL_ID,
      slots: [{ ssrc: randomBytes(4).readUInt32BE(0), payloadType: 111 }],
      onDatagram: () => {},
    });
  };
  const legA = legOf(relayA, sender, clientKeys);
  const legB = legOf(relayB, receiver, masterKeys(profile));
  legB.route(0, legA);

  // Every packet protected beforehand, so the flood costs the sender one send() each.
  const warmup = rate;
  const total = warmup + rate * seconds;
  const srtp = new SrtpSender(sessionKeys(profile, clientKeys));
  const payload = randomBytes(PAYLOAD_BYTES);
  const packets: Buffer[] = new Array(total);
  for (let i = 0; i < total; i++) {
    const header = Buffer.alloc(RTP_FIXED_HEADER_BYTES + 8);
    writeRtpHeader(header, false, 111, i & 0xffff, i * 960, ssrc);
    writeAudioLevelExtension(header, AUDIO_LEVEL_ID, 30 + (i % 40));
    packets[i] = Buffer.concat(srtp.protect(header, payload, Math.floor(i / 0x10000)));
  }
  const port = relayA.address().port;
  let sent = 0;
  /** Sends at `rate` per second until `until` packets have gone, catching up with the clock every ms. */
  const flood = async (until: number): Promise<void> => {
    const start = performance.now();
    const from = sent;
    while (sent < until) {
      const due = Math.min(until, from + Math.floor(((performance.now() - start) * rate) / 1000));
      while (sent < due) sender.send(packets[sent++]!, port, IP);
      await sleep(1);
    }
  };
  await flood(warmup);
  await sleep(200);
  const cpu0 = threadCpu(tid);
  const out0 = legB.stats[NativeLegStat.packetsOut]!;
  const wall0 = performance.now();
  await flood(total);
  await sleep(200);
  const wall = (performance.now() - wall0) / 1000;
  const cpu1 = threadCpu(tid);
  const out = legB.stats[NativeLegStat.packetsOut]! - out0;
  const ticks = cpu1.user - cpu0.user + cpu1.system - cpu0.system;
  const userShare = ticks > 0 ? (cpu1.user - cpu0.user) / ticks : 0;
  const perPacket = (cpu1.ns - cpu0.ns) / 1000 / out;
  const drops =
    legA.stats[NativeLegStat.dropAuthFailed]! +
    legA.stats[NativeLegStat.dropReplay]! +
    legA.stats[NativeLegStat.dropMalformed]!;
  console.log(
    `${name}: ${out} packets forwarded in ${wall.toFixed(1)} s (${Math.round(out / wall)}/s; ${received} received, ${drops} dropped): ` +
      `${perPacket.toFixed(2)} us of media-thread CPU per forwarded packet ` +
      `(user ${(perPacket * userShare).toFixed(2)} us, system ${(perPacket * (1 - userShare)).toFixed(2)} us), ` +
      `thread busy ${(((cpu1.ns - cpu0.ns) / 1e9 / wall) * 100).toFixed(0)} %`,
  );
  legA.close();
  legB.close();
  plane.close();
  for (const socket of [sender, receiver, relayA, relayB]) socket.close();
}

if (only !== "cm") await measure(PROFILE_AEAD_AES_128_GCM, "AEAD_AES_128_GCM");
if (only !== "gcm") await measure(PROFILE_AES128_CM_SHA1_80, "AES_CM_128_HMAC_SHA1_80");
