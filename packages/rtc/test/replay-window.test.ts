/**
 * @parley/rtc's SRTP replay window (replay-window.ts), by RFC 3711 3.3.2: each packet index
 * accepted once, a window of REPLAY_WINDOW_SIZE indexes behind the highest, anything older dropped
 * as too old, and nothing recorded until the packet authenticated. The relay's use of it on a live
 * call is tests/security/media-replay.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { packetIndex, REPLAY_WINDOW_SIZE, ReplayVerdict, ReplayWindow, RocTracker, receivedStream } from "@parley/rtc";

const { FRESH, REPLAY, TOO_OLD } = ReplayVerdict;

/** Checks `index` and, when fresh, accepts it (as the relay does once the packet authenticated). */
function receive(window: ReplayWindow, index: number): number {
  const verdict = window.check(index);
  if (verdict === FRESH) window.accept(index);
  return verdict;
}

describe("the SRTP replay window (RFC 3711 3.3.2)", () => {
  it("accepts each packet index once and calls the second copy a replay", () => {
    const window = new ReplayWindow();
    assert.equal(receive(window, 1000), FRESH);
    assert.equal(receive(window, 1001), FRESH);
    assert.equal(receive(window, 1000), REPLAY);
    assert.equal(receive(window, 1001), REPLAY);
    assert.equal(window.highest, 1001);
  });

  it("accepts reordered packets within the window once, and leaves the window alone until a packet is accepted", () => {
    const window = new ReplayWindow();
    receive(window, 5000);
    assert.equal(window.check(4990), FRESH, "an earlier packet not seen yet");
    assert.equal(window.check(4990), FRESH, "check alone records nothing (a forged packet must not move the window)");
    assert.equal(window.check(6000), FRESH);
    assert.equal(window.highest, 5000, "nor does a check of a later index");
    assert.equal(receive(window, 4990), FRESH);
    assert.equal(receive(window, 4990), REPLAY);
    assert.equal(receive(window, 5002), FRESH, "5001 skipped (lost)");
    assert.equal(receive(window, 5001), FRESH, "and arriving late");
    assert.equal(receive(window, 5001), REPLAY);
  });

  it(`remembers ${REPLAY_WINDOW_SIZE} indexes: 127 behind the highest is still judged, 128 behind is too old`, () => {
    assert.ok(REPLAY_WINDOW_SIZE >= 128);
    const window = new ReplayWindow();
    for (let index = 10_000; index <= 10_300; index++) receive(window, index);
    assert.equal(window.check(10_300 - 127), REPLAY, "the window's oldest slot still holds its packet");
    assert.equal(window.check(10_300 - 128), TOO_OLD);
    assert.equal(window.check(0), TOO_OLD);

    const gaps = new ReplayWindow();
    receive(gaps, 20_000);
    receive(gaps, 20_000 + 127);
    assert.equal(receive(gaps, 20_000), REPLAY, "the first packet, now at the window's edge");
    assert.equal(receive(gaps, 20_001), FRESH, "a lost packet at the edge still gets in once");
    assert.equal(receive(gaps, 20_001), REPLAY);
    receive(gaps, 20_000 + 128);
    assert.equal(gaps.check(20_000), TOO_OLD, "one step on, the first packet falls out");
    assert.equal(gaps.check(20_001), REPLAY);
  });

  it("forgets nothing and mixes nothing up when the window moves a little at a time, past slots reused by older indexes", () => {
    const window = new ReplayWindow();
    // Every other index arrives; the ring's slots are reused many times over.
    for (let index = 0; index < 2000; index += 2) assert.equal(receive(window, index), FRESH);
    for (let index = 1998 - 126; index <= 1998; index++) {
      assert.equal(window.check(index), index % 2 === 0 ? REPLAY : FRESH, `index ${index}`);
    }
  });

  it("keeps working across a sequence number wrap (the index is ROC * 65536 + SEQ)", () => {
    const rocs = new RocTracker();
    const window = new ReplayWindow();
    const indexOf = (seq: number) => packetIndex(rocs.guess(seq), seq);
    const arrive = (seq: number) => {
      const roc = rocs.guess(seq);
      const verdict = receive(window, packetIndex(roc, seq));
      if (verdict === FRESH) rocs.accept(seq, roc);
      return verdict;
    };
    for (let seq = 65_500; seq <= 65_535; seq++) assert.equal(arrive(seq), FRESH);
    for (let seq = 0; seq < 20; seq++) assert.equal(arrive(seq), FRESH);
    assert.equal(window.highest, 65_536 + 19);
    assert.equal(indexOf(65_535), 65_535, "a packet from before the wrap keeps its rollover counter");
    assert.equal(arrive(65_535), REPLAY, "a replay from before the wrap");
    assert.equal(arrive(3), REPLAY, "a replay from after it");
    assert.equal(arrive(20), FRESH);
  });

  it("starts over after a far jump ahead: all it knew is now too old, the indexes skipped are not", () => {
    const window = new ReplayWindow();
    for (let index = 100; index < 200; index++) receive(window, index);
    assert.equal(receive(window, 30_000), FRESH);
    assert.equal(window.check(199), TOO_OLD);
    assert.equal(window.check(30_000 - 1), FRESH, "a never-seen index just behind the jump");
    assert.equal(receive(window, 30_000), REPLAY);
    // 48-bit indexes: past 2^32 the slot arithmetic still holds.
    const big = 2 ** 47 + 12_345;
    assert.equal(receive(window, big), FRESH);
    assert.equal(receive(window, big - 5), FRESH);
    assert.equal(receive(window, big - 5), REPLAY);
    assert.equal(receive(window, big), REPLAY);
    assert.equal(window.check(big - 128), TOO_OLD);
  });

  it("a too-old index accepted anyway changes nothing", () => {
    const window = new ReplayWindow();
    receive(window, 1000);
    receive(window, 1000 + REPLAY_WINDOW_SIZE + 10);
    window.accept(1000);
    assert.equal(window.highest, 1000 + REPLAY_WINDOW_SIZE + 10);
    assert.equal(window.check(1000), TOO_OLD);
    assert.equal(window.check(1000 + REPLAY_WINDOW_SIZE), FRESH, "the index sharing its ring slot is not marked");
  });
});

describe("the RFC 3711 packet index and the state kept per received SSRC", () => {
  it("numbers packets ROC * 65536 + SEQ, exactly past 2^32", () => {
    assert.equal(packetIndex(0, 65_535), 65_535);
    assert.equal(packetIndex(1, 0), 65_536);
    assert.equal(packetIndex(2 ** 31, 65_535), 2 ** 47 + 65_535);
  });

  it("gives each SSRC its own rollover counter and window, both empty", () => {
    const a = receivedStream();
    const b = receivedStream();
    assert.equal(a.replay.highest, -1);
    assert.equal(receive(a.replay, 7), FRESH);
    assert.equal(b.replay.highest, -1, "the other stream's window is untouched");
    assert.notEqual(a.rocs, b.rocs);
  });
});
