import fs from "node:fs";
import path from "node:path";
import { dominantFrequency, rms as rmsOf, tone, writeWav } from "@parley/audio";
import type { Browser, BrowserContext, Page } from "playwright-core";

/** The browser the end-to-end tests drive (Debian's Chromium); PARLEY_CHROMIUM overrides it. */
export const CHROMIUM_PATH = process.env.PARLEY_CHROMIUM ?? "/usr/bin/chromium";

/**
 * Chromium switches for a headless softphone user: fake microphone fed from `wavFile` (looped by
 * Chromium; the file is read per browser process, so every user needs a browser of their own),
 * auto-granted media permission, autoplay without a gesture, WebRTC over loopback.
 */
export function chromiumArgs(wavFile: string): string[] {
  return [
    "--allow-loopback-in-peer-connection",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${wavFile}`,
    "--autoplay-policy=no-user-gesture-required",
    ...CHROMIUM_HEADLESS_ARGS,
  ];
}

/**
 * Headless Chromium as root on this closed network: no sandbox, no GPU, no QUIC, and none of the
 * background connections (updates, sync) that the network would refuse.
 */
export const CHROMIUM_HEADLESS_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Writes a `seconds`-long sine tone at `hz` (48 kHz mono WAV) as `dir/tone-HZ.wav` and returns its path. */
export function toneWav(dir: string, hz: number, seconds = 4, amplitude = 0.5): string {
  const file = path.join(dir, `tone-${hz}.wav`);
  if (!fs.existsSync(file)) writeWav(file, tone(hz, seconds, amplitude));
  return file;
}

export interface BrowserUser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Console errors, uncaught page errors and failed requests seen so far (for diagnostics). */
  problems: string[];
  /**
   * Content-Security-Policy violations seen so far in any page of the watched contexts: each is a
   * failure (see `assertNoCspViolations`), since the server's CSP must let the real app work.
   */
  cspViolations: string[];
  /** Records problems and CSP violations of another context of this browser too (e.g. a second login). */
  watch(context: BrowserContext): Promise<void>;
  /** Closes the browser (idempotent, never throws). */
  close(): Promise<void>;
}

/**
 * Runs before any script of every page: reports each `securitypolicyviolation` event on the console,
 * where `watch` picks it up. Chromium also logs its own "Refused to ..." line naming the Content
 * Security Policy; both are caught, and injected scripts are not themselves subject to the CSP.
 */
const CSP_PROBE = `document.addEventListener("securitypolicyviolation", (e) => {
  console.error("Content Security Policy violation: " + e.effectiveDirective + " blocked " + (e.blockedURI || "inline") +
    " at " + e.sourceFile + ":" + e.lineNumber + " on " + location.pathname);
});`;

/**
 * Runs before any script of every page: asks for the microphone without the browser's voice
 * processing (echo canceller, noise suppressor, gain control), whatever the app asks for. The fake
 * microphone plays a steady pure tone, which is what that processing is built to remove: Chromium's
 * suppressor, now and then and more often on a loaded machine, took a user's tone for noise or
 * echo, and with Opus DTX the client then sent a packet every 400 ms instead of every 20 ms (the
 * relay saw a quarter of the packets, no loss, and nobody speaking). The app's own choice (all three
 * on, for people in rooms) is Chromium's concern to honour; what the tests check is what the relay
 * carries, which this leaves unchanged.
 */
const RAW_MICROPHONE = `(() => {
  const devices = navigator.mediaDevices;
  if (!devices || typeof devices.getUserMedia !== "function") return;
  const getUserMedia = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (constraints) => {
    if (constraints && constraints.audio) {
      const asked = typeof constraints.audio === "object" ? constraints.audio : {};
      const audio = { ...asked, echoCancellation: false, noiseSuppression: false, autoGainControl: false };
      return getUserMedia({ ...constraints, audio });
    }
    return getUserMedia(constraints);
  };
})();`;

/** Throws listing every CSP violation the browser saw; `who` names it in the message. */
export function assertNoCspViolations(user: BrowserUser, who = "the browser"): void {
  if (user.cspViolations.length === 0) return;
  throw new Error(
    `${who} saw ${user.cspViolations.length} Content Security Policy violation(s):\n  ${user.cspViolations.join("\n  ")}`,
  );
}

export interface LaunchBrowserOptions {
  viewport?: { width: number; height: number };
  /** Extra Chromium switches. */
  args?: string[];
  /**
   * Play audio out (no --mute-audio). Off by default: nothing listens, and measuring what arrives
   * (`receivedAudio`) works either way. (With output playing and the echo canceller on, Chromium
   * took the far end's steady test tone as the echo reference and suppressed the fake microphone's
   * tone by ~50 dB; the tests' microphones have no voice processing, see RAW_MICROPHONE.)
   */
  audibleOutput?: boolean;
  /** Echo the page's console to this process's stderr, prefixed with this label. */
  echoConsole?: string;
  /** Another Chromium to run, e.g. a network lab host's `chromiumPath` (Chromium inside that namespace). */
  executablePath?: string;
}

/**
 * Launches one headless Chromium whose microphone plays `wavFile`, with one page (1200x800 unless told).
 * playwright-core is loaded on first use, so importing the testkit does not pay for it.
 */
export async function launchBrowserUser(wavFile: string, options: LaunchBrowserOptions = {}): Promise<BrowserUser> {
  if (!fs.existsSync(wavFile)) throw new Error(`fake microphone file ${wavFile} does not exist`);
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: options.executablePath ?? CHROMIUM_PATH,
    headless: true,
    // SIGHUP is a Parley server's certificate reload signal, and servers run in the tests' process.
    handleSIGHUP: false,
    // Playwright passes --mute-audio in headless mode; keep it unless asked (see `audibleOutput`).
    ...(options.audibleOutput ? { ignoreDefaultArgs: ["--mute-audio"] } : {}),
    args: [...chromiumArgs(wavFile), ...(options.args ?? [])],
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await browser.close().catch(() => {});
  };
  try {
    const problems: string[] = [];
    const cspViolations: string[] = [];
    const watch = async (context: BrowserContext) => {
      await context.addInitScript({ content: CSP_PROBE });
      await context.addInitScript({ content: RAW_MICROPHONE });
      context.on("console", (message) => {
        const text = message.text();
        if (options.echoConsole) process.stderr.write(`[${options.echoConsole}] ${message.type()}: ${text}\n`);
        if (message.type() === "error") problems.push(`console: ${text}`);
        if (text.includes("Content Security Policy")) cspViolations.push(text);
      });
      context.on("weberror", (error) => {
        problems.push(`page error: ${error.error().message}`);
        if (options.echoConsole) process.stderr.write(`[${options.echoConsole}] page error: ${error.error().stack}\n`);
      });
      context.on("requestfailed", (request) => {
        problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ""}`);
      });
    };
    const context = await browser.newContext({ viewport: options.viewport ?? { width: 1200, height: 800 } });
    await watch(context);
    const page = await context.newPage();
    return { browser, context, page, problems, cspViolations, watch, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * Launches one browser per WAV file, in parallel. If any launch fails the others are closed and the
 * error is thrown, so no browser outlives a failed `before` hook.
 */
export async function launchBrowserUsers(
  wavFiles: string[],
  options: LaunchBrowserOptions = {},
): Promise<BrowserUser[]> {
  const results = await Promise.allSettled(wavFiles.map((file) => launchBrowserUser(file, options)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    await Promise.all(results.map((r) => (r.status === "fulfilled" ? r.value.close() : undefined)));
    throw failed.reason;
  }
  return results.map((r) => (r as PromiseFulfilledResult<BrowserUser>).value);
}

export interface ReceivedAudio {
  /** RMS of the captured samples relative to full scale (a full-scale sine is ~0.707; silence 0). */
  rms: number;
  /** Frequency of the strongest spectral peak in Hz (0 for digital silence). */
  dominantHz: number;
  /** The captured audio, 16-bit mono at `sampleRate`. */
  samples: Int16Array;
  sampleRate: number;
}

export interface ReceivedAudioOptions {
  /** The media element whose `srcObject` is measured. */
  selector?: string;
  /** How long to wait for the element to carry a live audio track, in ms (default 10 s). */
  timeoutMs?: number;
}

/**
 * The few DOM types the in-page probe uses: the testkit compiles without the DOM lib, and pulling it in
 * would change the globals of every file in the program.
 */
interface DomTrack {
  readyState: string;
}
interface DomStream {
  getAudioTracks(): DomTrack[];
}
interface DomAudioNode {
  connect(node: DomAudioNode): void;
  disconnect(): void;
}
interface DomScriptProcessor extends DomAudioNode {
  onaudioprocess: ((event: { inputBuffer: { getChannelData(channel: number): Float32Array } }) => void) | null;
}
interface DomAudioContext {
  readonly sampleRate: number;
  readonly destination: DomAudioNode;
  resume(): Promise<void>;
  close(): Promise<void>;
  createMediaStreamSource(stream: DomStream): DomAudioNode;
  createScriptProcessor(bufferSize: number, inputs: number, outputs: number): DomScriptProcessor;
}
interface DomGlobals {
  document: { querySelector(selector: string): { srcObject?: unknown } | null };
  MediaStream: abstract new () => DomStream;
  AudioContext: new (options: { sampleRate: number }) => DomAudioContext;
}

/** In-page result: base64 of little-endian Int16 samples. */
interface PageCapture {
  base64: string;
  sampleRate: number;
}

/**
 * Records `seconds` of the audio arriving on the page's remote-audio element (`srcObject` MediaStream),
 * through a WebAudio graph in the page (MediaStreamSource -> ScriptProcessor), and analyses it here:
 * RMS and the dominant frequency (Hann-windowed FFT with interpolation, from @parley/audio).
 * Waits (up to `timeoutMs`) for the element to exist and carry a live audio track.
 */
export async function receivedAudio(
  page: Page,
  seconds = 1,
  options: ReceivedAudioOptions = {},
): Promise<ReceivedAudio> {
  const selector = options.selector ?? '[data-testid="remote-audio"]';
  const timeoutMs = options.timeoutMs ?? 10_000;
  const capture = await page.evaluate(
    async ({ selector, seconds, timeoutMs }): Promise<PageCapture> => {
      const dom = globalThis as unknown as DomGlobals;
      const deadline = performance.now() + timeoutMs;
      let stream: DomStream;
      for (;;) {
        const element = dom.document.querySelector(selector);
        const source = element?.srcObject;
        if (source instanceof dom.MediaStream && source.getAudioTracks().some((t) => t.readyState === "live")) {
          stream = source;
          break;
        }
        if (performance.now() > deadline) {
          throw new Error(
            element
              ? `${selector} has no live audio track (srcObject: ${String(source)})`
              : `no element matches ${selector}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const context = new dom.AudioContext({ sampleRate: 48000 });
      try {
        await context.resume();
        const source = context.createMediaStreamSource(stream);
        // ScriptProcessor rather than an AudioWorklet: no module to load, and enough for a test probe.
        const processor = context.createScriptProcessor(4096, 1, 1);
        const wanted = Math.round(seconds * context.sampleRate);
        const out = new Int16Array(wanted);
        let filled = 0;
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`audio graph delivered ${filled} of ${wanted} samples`)),
            seconds * 1000 + 5000,
          );
          processor.onaudioprocess = (event) => {
            const input = event.inputBuffer.getChannelData(0);
            for (let i = 0; i < input.length && filled < wanted; i++) {
              const v = Math.max(-1, Math.min(1, input[i] as number));
              out[filled++] = Math.round(v * 32767);
            }
            if (filled >= wanted) {
              clearTimeout(timer);
              resolve();
            }
          };
          source.connect(processor);
          // A ScriptProcessor only runs when connected onwards; it writes silence to its output.
          processor.connect(context.destination);
        });
        processor.onaudioprocess = null;
        source.disconnect();
        processor.disconnect();
        const bytes = new Uint8Array(out.buffer);
        let binary = "";
        for (let i = 0; i < bytes.length; i += 0x8000) {
          binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        }
        return { base64: btoa(binary), sampleRate: context.sampleRate };
      } finally {
        await context.close();
      }
    },
    { selector, seconds, timeoutMs },
  );
  const buffer = Buffer.from(capture.base64, "base64");
  const samples = new Int16Array(buffer.length >> 1);
  for (let i = 0; i < samples.length; i++) samples[i] = buffer.readInt16LE(i * 2);
  return {
    rms: rmsOf(samples),
    dominantHz: dominantFrequency(samples, capture.sampleRate),
    samples,
    sampleRate: capture.sampleRate,
  };
}

/**
 * Measures the received audio repeatedly (windows of `seconds`) until `accept` approves a measurement,
 * and returns it; on timeout throws with the last measurement. For assertions on audio that takes a
 * moment to arrive or to change (call set-up, mute, unmute).
 */
export async function waitForReceivedAudio(
  page: Page,
  accept: (audio: ReceivedAudio) => boolean,
  what: string,
  options: ReceivedAudioOptions & { seconds?: number; overallTimeoutMs?: number } = {},
): Promise<ReceivedAudio> {
  const deadline = Date.now() + (options.overallTimeoutMs ?? 15_000);
  let last: ReceivedAudio | undefined;
  for (;;) {
    last = await receivedAudio(page, options.seconds ?? 0.5, options);
    if (accept(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(
        `Timed out waiting for ${what} (last: rms ${last.rms.toFixed(4)}, dominant ${last.dominantHz.toFixed(1)} Hz)`,
      );
    }
  }
}
