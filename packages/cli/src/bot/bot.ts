import fs from "node:fs";
import { AudioSource, FRAME_SAMPLES, MixingRecorder, readWav } from "@parley/audio";
import { type Call, ParleyClient, type WebSocketLike } from "@parley/client";
import { type IceServer, ParleyError } from "@parley/protocol";
import type { ServerAddress } from "../server-address.js";
import { BotExit, exitCodeFor } from "./exit-codes.js";
import { localAddressTowards } from "./local-address.js";
import { connectionFailure, openSignalingSocket, type ServerTrust } from "./signaling-socket.js";
import { type BotPeer, createBotPeer } from "./werift-peer.js";

export interface BotOptions extends ServerTrust {
  server: ServerAddress;
  user: string;
  password: string;
  register: boolean;
  /** WAV played as the microphone, looped. Silence when absent. */
  play?: string;
  /** Where to write what the bot hears (48 kHz mono WAV); a second call goes to NAME-2.wav, and so on. */
  record?: string;
  /** Seconds to talk after the call is answered, then hang up; until the peer hangs up when absent. */
  duration?: number;
  /**
   * Local address for signaling and media. When absent, the system picks the route to the server
   * for signaling, and media uses that route's local address.
   */
  bind?: string;
  /** `parley answer`: seconds to wait for a call. */
  wait?: number;
  /** Seconds after the answer at which to put the call on hold, and to resume it. */
  holdAt?: number;
  resumeAt?: number;
  /** `parley answer`: answer a call that rings while in a call (the first goes on hold). */
  answerWaiting?: boolean;
  /** Seconds after answering the waiting call at which to switch back to the first call. */
  switchAt?: number;
  /** Invite this user into the call `at` seconds after the answer (turning it into a conference). */
  add?: { username: string; at: number };
  /** Append every signaling frame received, as JSON lines, to this file (for debugging and audits). */
  trace?: string;
  log: (line: string) => void;
}

/** Longest wait for a call's media before its scripted actions start anyway. */
const MEDIA_WAIT_MS = 10_000;
/** The loss bots size their Opus in-band FEC for (they do not read receiver reports). */
const BOT_FEC_LOSS_PERCENT = 10;

/** One call's media on the bot: its werift connection and its recorder. */
interface CallMedia {
  peer: BotPeer;
  /** 0 for the call's first connection, then one more for each that renewed it. */
  generation: number;
  /** Every stream the call brings (one per other participant heard), mixed. */
  recorder: MixingRecorder;
  live: boolean;
}

/**
 * The bot's microphone (one looped WAV, sent to every call: the server forwards only the calls
 * that are not on hold) and one recorder per call.
 */
class BotMedia {
  readonly #samples: Int16Array;
  readonly #calls = new Map<string, CallMedia>();
  /**
   * Calls answered before their connection was made (the SDK makes it once the server has named
   * the ICE servers), and those waiting for it to be made.
   */
  readonly #answeredEarly = new Set<string>();
  readonly #waitingForPeer = new Map<string, (() => void)[]>();
  #source: AudioSource | undefined;

  constructor(samples: Int16Array) {
    this.#samples = samples;
  }

  /**
   * The call's connection, or a new one renewing it (same recording, which goes on with the new
   * connection's streams from when they arrive).
   */
  peerConnection(callId: string, bind: string, iceServers: IceServer[]) {
    const previous = this.#calls.get(callId);
    const generation = previous ? previous.generation + 1 : 0;
    const media: CallMedia = {
      recorder: previous?.recorder ?? new MixingRecorder(),
      live: previous?.live ?? this.#answeredEarly.delete(callId),
      generation,
      peer: createBotPeer(
        bind,
        (frame, stream) => {
          if (media.live) media.recorder.push(generation * 16 + stream, frame);
        },
        iceServers,
      ),
    };
    this.#calls.set(callId, media);
    void media.peer.connected.then(() => this.#followFec());
    for (const made of this.#waitingForPeer.get(callId) ?? []) made();
    this.#waitingForPeer.delete(callId);
    return media.peer.pc;
  }

  /** Resolves when the call's connection is made, or after `limitMs`. */
  #peerMade(callId: string, limitMs: number): Promise<void> {
    if (this.#calls.has(callId)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, limitMs);
      const waiting = this.#waitingForPeer.get(callId) ?? [];
      waiting.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.#waitingForPeer.set(callId, waiting);
    });
  }

  /**
   * Resolves when the call's media connection is up (at once if it already is, as when it was set
   * up while ringing), or after `limitMs` at the latest, so scripts run even if media never comes.
   */
  async ready(callId: string, limitMs = MEDIA_WAIT_MS): Promise<boolean> {
    const since = performance.now();
    await this.#peerMade(callId, limitMs);
    const connected = this.#calls.get(callId)?.peer.connected;
    if (!connected) return false;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, limitMs - (performance.now() - since)));
    });
    const result = await Promise.race([connected.then(() => true), late]);
    clearTimeout(timer);
    return result;
  }

  /** How the call's media reaches the relay (see BotPeer.path). */
  path(callId: string): string | undefined {
    return this.#calls.get(callId)?.peer.path();
  }

  /** A call is answered: record it, and make sure the microphone runs. */
  start(callId: string): void {
    const media = this.#calls.get(callId);
    if (media) media.live = true;
    else this.#answeredEarly.add(callId);
    if (!this.#source) {
      this.#source = new AudioSource(this.#samples, (frame) => {
        for (const m of this.#calls.values()) if (m.live) m.peer.send(frame);
      });
      this.#source.start();
    }
    this.#followFec();
  }

  /**
   * The microphone adds Opus in-band FEC when a call's server asked for it: for an assumed
   * BOT_FEC_LOSS_PERCENT of loss, as bots do not adapt to receiver reports the way browsers do.
   */
  #followFec(): void {
    const source = this.#source;
    if (!source) return;
    const wanted = [...this.#calls.values()].some((m) => m.live && m.peer.fecWanted());
    source.fecLossPercent = wanted ? BOT_FEC_LOSS_PERCENT : 0;
  }

  /** A call ended: close its connection, save its recording. */
  finish(callId: string, file: string | undefined): { sent: number; received: number } {
    this.#answeredEarly.delete(callId);
    const media = this.#calls.get(callId);
    if (!media) return { sent: 0, received: 0 };
    media.live = false;
    media.peer.close();
    if (file) media.recorder.save(file);
    media.recorder.close();
    const received = media.recorder.packetsReceived;
    this.#calls.delete(callId);
    const sent = this.#source?.framesSent ?? 0;
    if (this.#calls.size === 0) {
      this.#source?.stop();
      this.#source = undefined;
    }
    return { sent, received };
  }
}

/** The bot's client, its WebSocket opened as --server, --bind, --ca and --insecure say; media from `mediaAddress`. */
function connectClient(options: BotOptions, media: BotMedia, mediaAddress: string): BotClient {
  const failures: Error[] = [];
  const client = new ParleyClient({
    url: options.server.url,
    webSocket: (url) => {
      const ws = openSignalingSocket(url, {
        ...(options.bind ? { localAddress: options.bind } : {}),
        ...(options.ca ? { ca: options.ca } : {}),
        ...(options.insecure ? { insecure: true } : {}),
        onError: (error) => failures.push(error),
      });
      const trace = options.trace;
      if (trace) ws.on("message", (data) => fs.appendFileSync(trace, `${data.toString()}\n`));
      return ws as unknown as WebSocketLike;
    },
    client: { name: "parley-bot", version: "1" },
    // A dropped connection is resumed, and the call with it (the server keeps it for its grace period).
    reconnect: true,
    // Without --bind, the route to the server is looked up again for each connection: a renewed
    // one (after a network change) takes the machine's new address.
    createPeerConnection: async (call, { iceServers }) => {
      let address = mediaAddress;
      if (!options.bind) {
        address = await localAddressTowards(options.server.host, options.server.port).catch(() => mediaAddress);
        if (address !== mediaAddress) options.log(`media from ${address} now (the route to ${options.server.host})`);
      }
      return media.peerConnection(call.id, address, iceServers);
    },
  });
  let lost = false;
  client.on("connection", (state) => {
    if (state === "reconnecting" && !lost) options.log("signaling connection lost: reconnecting");
    if (state === "connected" && lost) options.log("signaling connection back");
    lost = state === "reconnecting";
  });
  return { client, lastFailure: () => failures.at(-1) };
}

interface BotClient {
  client: ParleyClient;
  /** The signaling socket's last error, if any. */
  lastFailure(): Error | undefined;
}

/**
 * Where the bot's media comes from: --bind, or else the local address of the route to the server.
 * Says which, and warns when --insecure turns certificate checks off.
 */
async function mediaAddressFor(options: BotOptions): Promise<string> {
  const { server } = options;
  if (options.insecure && server.secure) {
    options.log(
      `warning: --insecure: the certificate of ${server.host} is not checked; anyone on the way can read and change this connection`,
    );
  }
  if (options.bind) return options.bind;
  const address = await localAddressTowards(server.host, server.port);
  options.log(`media from ${address} (the route to ${server.host})`);
  return address;
}

async function logIn({ client, lastFailure }: BotClient, options: BotOptions): Promise<void> {
  try {
    await client.connect();
  } catch (error) {
    const failure = lastFailure();
    if (failure) throw new Error(connectionFailure(options.server, failure), { cause: error });
    throw error;
  }
  if (options.register) {
    try {
      await client.register({ username: options.user, password: options.password, deviceName: "parley bot" });
      options.log(`registered ${options.user}`);
      return;
    } catch (error) {
      if (!(error instanceof ParleyError && error.code === "USERNAME_TAKEN")) throw error;
    }
  }
  await client.login(options.user, options.password, "parley bot");
  options.log(`logged in as ${options.user}`);
}

/** The file for the n-th call's recording: NAME.wav, then NAME-2.wav, ... */
function recordingFile(record: string | undefined, n: number): string | undefined {
  if (!record || n === 1) return record;
  return record.replace(/(\.wav)?$/i, `-${n}$1`);
}

/** Runs `action` `seconds` after now, unless the call has ended by then. */
function at(
  call: Call,
  seconds: number | undefined,
  what: string,
  action: () => Promise<void>,
  log: (l: string) => void,
) {
  if (seconds === undefined) return;
  setTimeout(() => {
    if (call.endInfo) return;
    log(what);
    void action().catch((error: Error) => log(`${what} failed: ${error.message}`));
  }, seconds * 1000).unref();
}

/**
 * Talks on a call until --duration elapses or the call ends; returns the exit code. The scripted
 * times (--duration, --hold-at, --resume-at, --add-at; --switch-at for a waiting call) count from
 * when the call's audio connected: normally the answer, as media is set up while it rings, but on
 * a loaded machine the DTLS handshake can take seconds, and a script timed from the answer would
 * hold a call before anyone heard anything.
 */
async function converse(
  call: Call,
  n: number,
  media: BotMedia,
  options: BotOptions,
  script: () => void = () => undefined,
): Promise<number> {
  const started = () => {
    media.start(call.id);
    options.log(`answered: talking${options.duration ? ` for ${options.duration} s` : " until hang up"}`);
    const since = performance.now();
    void media.ready(call.id).then((connected) => {
      const waited = Math.round(performance.now() - since);
      const path = media.path(call.id);
      options.log(
        `call ${n}: ${connected ? `media connected (${path ?? "path unknown"})` : "still no media"} ${waited} ms after the answer`,
      );
      if (n === 1) {
        at(call, options.duration, "hanging up", () => call.hangup(), options.log);
        at(call, options.holdAt, "putting the call on hold", () => call.hold(), options.log);
        at(call, options.resumeAt, "resuming the call", () => call.resume(), options.log);
        const add = options.add;
        if (add) at(call, add.at, `inviting ${add.username}`, () => call.add(add.username), options.log);
      }
      script();
    });
  };
  if (call.state === "active") started();
  else call.on("state", (state) => state === "active" && started());
  let described = "";
  call.on("info", () => {
    const held = call.info.participants.filter((p) => p.held).map((p) => p.username);
    if (held.length) options.log(`call ${n} on hold by ${held.join(", ")}`);
    if (!call.conference) return;
    const who = call.peers.map((p) => `${p.username} ${p.state}`).join(", ");
    if (who !== described) options.log(`conference: ${who}`);
    described = who;
  });
  const end = await call.whenEnded();
  const file = recordingFile(options.record, n);
  const counts = media.finish(call.id, file);
  const who =
    end.by === null ? "" : ` by ${call.info.participants.find((p) => p.userId === end.by)?.username ?? end.by}`;
  options.log(
    `ended${n > 1 ? ` (call ${n})` : ""}: ${end.reason}${who} (${end.outcome}); sent ${counts.sent} frames, ` +
      `received ${counts.received} packets${file ? `; recording in ${file}` : ""}`,
  );
  return exitCodeFor(end.outcome, end.reason);
}

function microphone(options: BotOptions): Int16Array {
  return options.play ? readWav(options.play) : new Int16Array(FRAME_SAMPLES);
}

/** `parley call`: calls `to`, talks, hangs up. Returns the process exit code. */
export async function runCallBot(options: BotOptions & { to: string | string[] }): Promise<number> {
  const media = new BotMedia(microphone(options));
  const bot = connectClient(options, media, await mediaAddressFor(options));
  const { client } = bot;
  try {
    await logIn(bot, options);
    let call: Call;
    try {
      call = await client.call(options.to);
    } catch (error) {
      if (error instanceof ParleyError) {
        options.log(`call refused: ${error.code}: ${error.message}`);
        if (error.code === "USER_OFFLINE") return BotExit.UNREACHABLE;
        if (error.code === "USER_BUSY") return BotExit.BUSY;
      }
      throw error;
    }
    options.log(`calling ${[options.to].flat().join(", ")} (call ${call.id}): ringing`);
    call.on("mediaError", (error) => options.log(`media error: ${error.message}`));
    call.on("mediaRenewed", () => options.log(`media renewed (${media.path(call.id) ?? "connecting"})`));
    return await converse(call, 1, media, options);
  } finally {
    client.disconnect();
  }
}

/**
 * `parley answer`: waits for the first incoming call, answers it, talks. With --answer-waiting
 * it also answers a call that rings meanwhile (the first goes on hold) and, with --switch-at,
 * switches back. Returns the first call's exit code once every call has ended.
 */
export async function runAnswerBot(options: BotOptions): Promise<number> {
  const media = new BotMedia(microphone(options));
  const bot = connectClient(options, media, await mediaAddressFor(options));
  const { client } = bot;
  try {
    await logIn(bot, options);
    options.log("waiting for a call");
    const calls: Promise<number>[] = [];
    let firstCall: Call | undefined;
    const first = await new Promise<Call | undefined>((resolve) => {
      const timer = options.wait ? setTimeout(() => resolve(undefined), options.wait * 1000) : undefined;
      client.delegate = {
        onIncomingCall: (incoming) => {
          if (!firstCall) {
            firstCall = incoming;
            clearTimeout(timer);
            resolve(incoming);
          } else if (options.answerWaiting && calls.length === 1) {
            calls.push(answerWaiting(incoming, firstCall, media, options));
          } else {
            options.log(`declining call from ${incoming.peers[0]?.username ?? "?"}`);
            void incoming.decline().catch(() => undefined);
          }
        },
      };
    });
    if (!first) {
      options.log("no call arrived in time");
      return BotExit.FAILED;
    }
    options.log(`incoming call from ${first.peers[0]?.username ?? "?"}: answering`);
    first.on("mediaError", (error) => options.log(`media error: ${error.message}`));
    first.on("mediaRenewed", () => options.log(`media renewed (${media.path(first.id) ?? "connecting"})`));
    calls.push(first.answer().then(() => converse(first, 1, media, options)));
    const code = await calls[0]!;
    await Promise.all(calls);
    return code;
  } finally {
    client.disconnect();
  }
}

/** Answers a call that rings during the first one (which goes on hold), and switches back at --switch-at. */
async function answerWaiting(call: Call, first: Call, media: BotMedia, options: BotOptions): Promise<number> {
  options.log(`call waiting from ${call.peers[0]?.username ?? "?"}: answering, the first call goes on hold`);
  await call.answer();
  return converse(call, 2, media, options, () =>
    at(call, options.switchAt, "switching back to the first call", () => first.resume(), options.log),
  );
}
