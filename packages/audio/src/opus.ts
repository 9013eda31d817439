import { createRequire } from "node:module";
import { FRAME_SAMPLES, SAMPLE_RATE } from "./constants.js";

/*
 * We drive opusscript's Emscripten build (libopus 1.4 compiled to wasm) directly instead of going
 * through its `OpusScript` JS wrapper, because the wrapper in opusscript 0.1.1 is unsafe with more
 * than a handful of live instances:
 *  - it takes `HEAPU16.subarray(pointer)`, so its scratch buffers live at 2 x the malloc'd address,
 *    i.e. in memory it does not own (other instances' state), and past ~35 live instances the
 *    doubled address runs off the heap and the wasm traps;
 *  - it caches typed-array views of the heap, which are detached when the wasm memory grows.
 * Here every buffer is addressed at its real malloc'd address and heap views are re-read on every
 * call. The native handler still expects opusscript's byte-per-uint16 calling convention (see
 * `encode`/`decode`), which is why PCM is spread/collected one byte per 16-bit slot.
 */

interface NativeHandler {
  /** Repacks `count` samples given as one byte per uint16 slot (lo, hi, lo, hi...) in place, then opus_encode(). */
  _encode(inputPtr: number, count: number, outputPtr: number, frameSize: number): number;
  /** opus_decode(), then writes each sample as two uint16 slots (lo byte, hi byte). Returns samples per channel. */
  _decode(inputPtr: number, bytes: number, outputPtr: number): number;
  _encoder_ctl(ctl: number, arg: number): number;
}

interface NativeModule {
  OpusScriptHandler: {
    new (sampleRate: number, channels: number, application: number): NativeHandler;
    destroy_handler(handler: NativeHandler): void;
  };
  _malloc(bytes: number): number;
  _free(pointer: number): void;
  HEAPU8: Uint8Array;
  HEAPU16: Uint16Array;
}

const OPUS_APPLICATION_VOIP = 2048;
/** opus_encoder_ctl requests (opus_defines.h). */
const OPUS_SET_INBAND_FEC_REQUEST = 4012;
const OPUS_SET_PACKET_LOSS_PERC_REQUEST = 4014;
/** libopus' recommended maximum packet size, as compiled into opusscript (1276 * 3). */
const MAX_PACKET_BYTES = 3828;
/** opusscript decodes up to 120 ms (5760 samples) and writes 2 uint16 slots per sample. */
const MAX_DECODED_SAMPLES = 5760;

let native: NativeModule | undefined;

function nativeModule(): NativeModule {
  if (native === undefined) {
    const require = createRequire(import.meta.url);
    const factory = require("opusscript/build/opusscript_native_wasm.js") as () => NativeModule;
    native = factory(); // instantiates synchronously under Node
  }
  return native;
}

interface NativeResources {
  handler: NativeHandler;
  pointers: number[];
}

function release(resources: NativeResources): void {
  const m = nativeModule();
  m.OpusScriptHandler.destroy_handler(resources.handler);
  for (const pointer of resources.pointers) m._free(pointer);
  resources.pointers.length = 0;
}

/** Safety net only: frees wasm memory of codecs that were garbage-collected without close(). */
const finalizer = new FinalizationRegistry<NativeResources>(release);

function allocate(owner: object, byteSizes: number[]): NativeResources {
  const m = nativeModule();
  const handler = new m.OpusScriptHandler(SAMPLE_RATE, 1, OPUS_APPLICATION_VOIP);
  const pointers = byteSizes.map((size) => m._malloc(size));
  if (pointers.some((p) => p === 0)) {
    const resources = { handler, pointers: pointers.filter((p) => p !== 0) };
    release(resources);
    throw new Error("Opus: out of wasm memory");
  }
  const resources = { handler, pointers };
  finalizer.register(owner, resources, owner);
  return resources;
}

/** 48 kHz mono Opus encoder (VOIP application, libopus defaults: VBR, ~51 kbit/s, 6.5 ms algorithmic delay). */
export class OpusEncoder {
  #resources: NativeResources | undefined;
  readonly #input: number;
  readonly #output: number;

  constructor() {
    // Input: 960 samples x 2 bytes, each byte in its own uint16 slot = 3840 bytes.
    this.#resources = allocate(this, [FRAME_SAMPLES * 2 * 2, MAX_PACKET_BYTES]);
    [this.#input, this.#output] = this.#resources.pointers as [number, number];
  }

  /**
   * In-band FEC (RFC 7587 `useinbandfec`): each packet also carries a low-rate copy of the previous
   * frame, which a listener's decoder uses when that packet was lost. libopus adds it only when it
   * expects loss, so `expectedLossPercent` (1-100) says how much; 0 turns FEC off (the default).
   * libopus decides per frame whether the bitrate allows it.
   */
  setFec(expectedLossPercent: number): void {
    const resources = this.#resources;
    if (resources === undefined) throw new Error("OpusEncoder is closed");
    if (!Number.isInteger(expectedLossPercent) || expectedLossPercent < 0 || expectedLossPercent > 100) {
      throw new RangeError(`OpusEncoder.setFec expects 0..100 percent, got ${expectedLossPercent}`);
    }
    const on = expectedLossPercent > 0 ? 1 : 0;
    if (resources.handler._encoder_ctl(OPUS_SET_INBAND_FEC_REQUEST, on) < 0) throw new Error("Opus: cannot set FEC");
    if (resources.handler._encoder_ctl(OPUS_SET_PACKET_LOSS_PERC_REQUEST, expectedLossPercent) < 0) {
      throw new Error("Opus: cannot set the expected packet loss");
    }
  }

  /** Encodes exactly one 20 ms frame (960 samples) and returns the Opus packet (a fresh Buffer). */
  encode(frame: Int16Array): Buffer {
    const resources = this.#resources;
    if (resources === undefined) throw new Error("OpusEncoder is closed");
    if (frame.length !== FRAME_SAMPLES) {
      throw new RangeError(`OpusEncoder.encode expects ${FRAME_SAMPLES} samples, got ${frame.length}`);
    }
    const m = nativeModule();
    const heap16 = m.HEAPU16; // re-read: views are replaced when the wasm memory grows
    const base = this.#input >> 1;
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      const s = (frame[i] as number) & 0xffff;
      heap16[base + 2 * i] = s & 0xff;
      heap16[base + 2 * i + 1] = s >> 8;
    }
    const length = resources.handler._encode(this.#input, FRAME_SAMPLES, this.#output, FRAME_SAMPLES);
    if (length < 0) throw new Error(`Opus encode failed (${length})`);
    return Buffer.from(m.HEAPU8.subarray(this.#output, this.#output + length));
  }

  /** Frees the encoder's wasm memory. Idempotent; encode() throws afterwards. */
  close(): void {
    const resources = this.#resources;
    if (resources === undefined) return;
    this.#resources = undefined;
    finalizer.unregister(this);
    release(resources);
  }
}

/**
 * 48 kHz mono Opus decoder. It decodes each packet's own frame: opusscript's native decode always
 * passes decode_fec = 0, so the in-band FEC copy of a lost frame cannot be used here (a lost
 * packet stays a gap); browsers' decoders (NetEq) do use it.
 */
export class OpusDecoder {
  #resources: NativeResources | undefined;
  readonly #input: number;
  readonly #output: number;

  constructor() {
    this.#resources = allocate(this, [MAX_PACKET_BYTES, MAX_DECODED_SAMPLES * 2 * 2]);
    [this.#input, this.#output] = this.#resources.pointers as [number, number];
  }

  /** Decodes one Opus packet; returns its PCM (960 samples for a 20 ms packet; 10-120 ms packets are accepted). */
  decode(packet: Uint8Array): Int16Array {
    const resources = this.#resources;
    if (resources === undefined) throw new Error("OpusDecoder is closed");
    if (packet.length === 0 || packet.length > MAX_PACKET_BYTES) {
      throw new RangeError(`Opus packet must be 1..${MAX_PACKET_BYTES} bytes, got ${packet.length}`);
    }
    const m = nativeModule();
    m.HEAPU8.set(packet, this.#input);
    const count = resources.handler._decode(this.#input, packet.length, this.#output);
    if (count < 0) throw new Error(`Opus decode failed (${count})`);
    const heap16 = m.HEAPU16;
    const base = this.#output >> 1;
    const out = new Int16Array(count);
    for (let i = 0; i < count; i++) {
      out[i] = (((heap16[base + 2 * i] as number) | ((heap16[base + 2 * i + 1] as number) << 8)) << 16) >> 16;
    }
    return out;
  }

  /** Frees the decoder's wasm memory. Idempotent; decode() throws afterwards. */
  close(): void {
    const resources = this.#resources;
    if (resources === undefined) return;
    this.#resources = undefined;
    finalizer.unregister(this);
    release(resources);
  }
}
