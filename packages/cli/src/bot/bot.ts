import fs from "node:fs";
import { AudioRecorder, AudioSource, FRAME_SAMPLES, readWav } from "@parley/audio";
import { type Call, ParleyClient, type WebSocketLike } from "@parley/client";
import { ParleyError } from "@parley/protocol";
import WebSocket from "ws";
import { BotExit, exitCodeFor } from "./exit-codes.js";
import { type BotPeer, createBotPeer } from "./werift-peer.js";

export interface BotOptions {
  server: string;
  user: string;
  password: string;
  register: boolean;
  /** WAV played as the microphone, looped. Silence when absent. */
  play?: string;
  /** Where to write what the bot hears (48 kHz mono WAV). */
  record?: string;
  /** Seconds to talk after the call is answered, then hang up; until the peer hangs up when absent. */
  duration?: number;
  /** Local address for signaling and media. */
  bind: string;
  /** `parley answer`: seconds to wait for a call. */
  wait?: number;
  /** Append every signaling frame received, as JSON lines, to this file (for debugging and audits). */
  trace?: string;
  log: (line: string) => void;
}

/** The bot's side of one call: microphone, recorder and werift connection. */
class BotMedia {
  readonly recorder = new AudioRecorder();
  #source: AudioSource | undefined;
  #peer: BotPeer | undefined;
  #live = false;
  readonly #samples: Int16Array;

  constructor(samples: Int16Array) {
    this.#samples = samples;
  }

  peerConnection(bind: string) {
    this.#peer = createBotPeer(bind, (frame) => {
      if (this.#live) this.recorder.push(frame);
    });
    return this.#peer.pc;
  }

  /** The call is answered: start talking and recording. */
  start(): void {
    if (this.#live) return;
    this.#live = true;
    this.#source = new AudioSource(this.#samples, (frame) => this.#peer?.send(frame));
    this.#source.start();
  }

  stop(): { sent: number; received: number } {
    this.#live = false;
    this.#source?.stop();
    this.#peer?.close();
    return { sent: this.#source?.framesSent ?? 0, received: this.recorder.packetsReceived };
  }
}

function connectClient(options: BotOptions, media: BotMedia): ParleyClient {
  return new ParleyClient({
    url: options.server,
    webSocket: (url) => {
      const ws = new WebSocket(url, { localAddress: options.bind });
      const trace = options.trace;
      if (trace) ws.on("message", (data) => fs.appendFileSync(trace, `${data.toString()}\n`));
      return ws as unknown as WebSocketLike;
    },
    client: { name: "parley-bot", version: "1" },
    createPeerConnection: () => media.peerConnection(options.bind),
  });
}

async function logIn(client: ParleyClient, options: BotOptions): Promise<void> {
  await client.connect();
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

/** Talks on an answered call until --duration elapses or the call ends; returns the exit code. */
async function converse(call: Call, media: BotMedia, options: BotOptions): Promise<number> {
  const started = () => {
    media.start();
    options.log(`answered: talking${options.duration ? ` for ${options.duration} s` : " until hang up"}`);
    if (options.duration !== undefined) {
      setTimeout(() => void call.hangup().catch(() => undefined), options.duration * 1000).unref();
    }
  };
  if (call.state === "active") started();
  else call.on("state", (state) => state === "active" && started());
  const end = await call.whenEnded();
  const counts = media.stop();
  if (options.record) media.recorder.save(options.record);
  media.recorder.close();
  const who =
    end.by === null ? "" : ` by ${call.info.participants.find((p) => p.userId === end.by)?.username ?? end.by}`;
  options.log(
    `ended: ${end.reason}${who} (${end.outcome}); sent ${counts.sent} frames, received ${counts.received} packets` +
      (options.record ? `; recording in ${options.record}` : ""),
  );
  return exitCodeFor(end.outcome, end.reason);
}

function microphone(options: BotOptions): Int16Array {
  return options.play ? readWav(options.play) : new Int16Array(FRAME_SAMPLES);
}

/** `parley call`: calls `to`, talks, hangs up. Returns the process exit code. */
export async function runCallBot(options: BotOptions & { to: string }): Promise<number> {
  const media = new BotMedia(microphone(options));
  const client = connectClient(options, media);
  try {
    await logIn(client, options);
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
    options.log(`calling ${options.to} (call ${call.id}): ringing`);
    call.on("mediaError", (error) => options.log(`media error: ${error.message}`));
    return await converse(call, media, options);
  } finally {
    client.disconnect();
  }
}

/** `parley answer`: waits for the first incoming call, answers it, talks. */
export async function runAnswerBot(options: BotOptions): Promise<number> {
  const media = new BotMedia(microphone(options));
  const client = connectClient(options, media);
  try {
    await logIn(client, options);
    options.log("waiting for a call");
    const call = await new Promise<Call | undefined>((resolve) => {
      const timer = options.wait ? setTimeout(() => resolve(undefined), options.wait * 1000) : undefined;
      client.delegate = {
        onIncomingCall: (incoming) => {
          clearTimeout(timer);
          client.delegate = {};
          resolve(incoming);
        },
      };
    });
    if (!call) {
      options.log("no call arrived in time");
      return BotExit.FAILED;
    }
    const from = call.peers[0]?.username ?? "?";
    options.log(`incoming call from ${from}: answering`);
    call.on("mediaError", (error) => options.log(`media error: ${error.message}`));
    await call.answer();
    return await converse(call, media, options);
  } finally {
    client.disconnect();
  }
}
