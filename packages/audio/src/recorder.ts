import { FRAME_SAMPLES, SAMPLE_RATE } from "./constants.js";
import { OpusDecoder } from "./opus.js";
import { writeWav } from "./wav.js";

/** An RTP Opus packet as received: payload, RTP timestamp (uint32, 48 kHz clock), sequence number (uint16). */
export interface RtpAudioPacket {
  payload: Uint8Array;
  timestamp: number;
  sequenceNumber: number;
}

/**
 * Reorder window: a packet is decoded once a packet at least this many samples (200 ms) newer has
 * arrived, or when the recording is read/saved/closed. Packets arriving after their place in the
 * timeline was decoded are "late" and dropped.
 */
const REORDER_WINDOW_SAMPLES = 10 * FRAME_SAMPLES;
const TWO_32 = 2 ** 32;
/** Longest silence inserted for a timestamp gap; longer jumps (sender restarted, bogus timestamp) are shortened to this. */
const MAX_GAP_SAMPLES = 5 * 60 * SAMPLE_RATE;

interface PendingPacket {
  extendedTimestamp: number;
  payload: Uint8Array;
}

/** Unwraps a 32-bit (or 16-bit) RTP counter against a reference on the extended (unbounded) scale. */
function unwrap(value: number, reference: number, modulus: number): number {
  const referenceLow = ((reference % modulus) + modulus) % modulus;
  let delta = (value - referenceLow) % modulus;
  if (delta >= modulus / 2) delta -= modulus;
  else if (delta < -modulus / 2) delta += modulus;
  return reference + delta;
}

/**
 * Records an incoming Opus RTP stream as 48 kHz mono PCM laid out by RTP timestamp: sample 0 is the
 * earliest packet decoded, gaps (lost packets, DTX) become silence, so the recording's timeline matches
 * the sender's. Packets are buffered briefly and decoded in timestamp order, so reordering within
 * 200 ms costs nothing (the Opus decoder sees the stream in order). Duplicates, packets behind the
 * already-decoded part, and undecodable payloads are discarded. Timestamps and sequence numbers may
 * wrap (32-bit / 16-bit). Memory: 96 KB per second of timeline; a silent gap longer than 5 minutes
 * is shortened to 5 minutes.
 */
export class AudioRecorder {
  #decoder: OpusDecoder | undefined;
  #closed = false;
  #pcm = new Int16Array(SAMPLE_RATE * 10);
  /** Samples decoded so far (the committed timeline). */
  #length = 0;
  /** Extended timestamp of sample 0, set by the first decoded packet. */
  #origin: number | undefined;
  #pending = new Map<number, PendingPacket>();
  #newest: number | undefined;
  #highestSequence: number | undefined;
  #lowestSequence: number | undefined;
  #received = 0;
  #discarded = 0;

  /** Accepts one packet. Ignored after close(). */
  push(packet: RtpAudioPacket): void {
    if (this.#closed) return;
    const timestamp = packet.timestamp >>> 0;
    const extended = this.#newest === undefined ? timestamp : unwrap(timestamp, this.#newest, TWO_32);
    const late = this.#origin !== undefined && extended < this.#origin + this.#length;
    if (late || this.#pending.has(extended) || packet.payload.length === 0) {
      this.#discarded++;
      return;
    }
    this.#received++;
    const sequence =
      this.#highestSequence === undefined
        ? packet.sequenceNumber & 0xffff
        : unwrap(packet.sequenceNumber & 0xffff, this.#highestSequence, 2 ** 16);
    this.#highestSequence = Math.max(this.#highestSequence ?? sequence, sequence);
    this.#lowestSequence = Math.min(this.#lowestSequence ?? sequence, sequence);
    // Copy: callers often hand us views into a reused socket buffer.
    this.#pending.set(extended, { extendedTimestamp: extended, payload: Uint8Array.from(packet.payload) });
    if (this.#newest === undefined || extended > this.#newest) this.#newest = extended;
    this.#drain(this.#newest - REORDER_WINDOW_SAMPLES);
  }

  /** The recording so far (a copy). Decodes everything still buffered first, so later packets for earlier slots count as late. */
  get samples(): Int16Array {
    this.#drain(Number.POSITIVE_INFINITY);
    return this.#pcm.slice(0, this.#length);
  }

  /** Packets accepted (not counting duplicates, late or empty packets). */
  get packetsReceived(): number {
    return this.#received;
  }

  /** Packets dropped as duplicates, late, empty or undecodable. */
  get packetsDiscarded(): number {
    return this.#discarded;
  }

  /** Packets missing from the sequence-number range seen so far (RFC 3550 "cumulative lost", never negative). */
  get packetsLost(): number {
    if (this.#highestSequence === undefined || this.#lowestSequence === undefined) return 0;
    return Math.max(0, this.#highestSequence - this.#lowestSequence + 1 - this.#received);
  }

  /** Writes the recording as a 48 kHz mono 16-bit WAV. */
  save(file: string): void {
    writeWav(file, this.samples);
  }

  /** Decodes what is buffered and frees the decoder's wasm memory. `samples`/`save` still work afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#drain(Number.POSITIVE_INFINITY);
    this.#closed = true;
    this.#decoder?.close();
    this.#decoder = undefined;
  }

  /** Decodes, in timestamp order, every pending packet with extended timestamp <= `upTo`. */
  #drain(upTo: number): void {
    if (this.#pending.size === 0) return;
    const ready = [...this.#pending.values()]
      .filter((p) => p.extendedTimestamp <= upTo)
      .sort((a, b) => a.extendedTimestamp - b.extendedTimestamp);
    for (const packet of ready) {
      this.#pending.delete(packet.extendedTimestamp);
      this.#decode(packet);
    }
  }

  #decode(packet: PendingPacket): void {
    this.#origin ??= packet.extendedTimestamp;
    let position = packet.extendedTimestamp - this.#origin;
    if (position - this.#length > MAX_GAP_SAMPLES) {
      this.#origin += position - this.#length - MAX_GAP_SAMPLES;
      position = this.#length + MAX_GAP_SAMPLES;
    }
    if (position < this.#length) {
      // Overlaps audio already decoded (e.g. a longer packet before it): late.
      this.#discarded++;
      return;
    }
    this.#decoder ??= new OpusDecoder();
    let pcm: Int16Array;
    try {
      pcm = this.#decoder.decode(packet.payload);
    } catch {
      this.#discarded++;
      return;
    }
    this.#ensureCapacity(position + pcm.length);
    this.#pcm.fill(0, this.#length, position); // silence for the gap
    this.#pcm.set(pcm, position);
    this.#length = position + pcm.length;
  }

  #ensureCapacity(samples: number): void {
    if (samples <= this.#pcm.length) return;
    let capacity = this.#pcm.length;
    while (capacity < samples) capacity *= 2;
    const grown = new Int16Array(capacity);
    grown.set(this.#pcm.subarray(0, this.#length));
    this.#pcm = grown;
  }
}
