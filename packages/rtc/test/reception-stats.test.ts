/**
 * @parley/rtc's RFC 3550 reception statistics (reception-stats.ts) on synthetic streams whose
 * loss and jitter are known: A.3 (expected, lost, fraction lost per report interval) and A.8
 * (interarrival jitter, J += (|D| - J) / 16).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReceptionStats } from "@parley/rtc";

const SSRC = 0x1234_5678;
/** Opus: 20 ms frames of 960 ticks at 48 kHz. */
const FRAME_MS = 20;
const FRAME_TICKS = 960;

/** Counts packet `i` of a stream numbered from `firstSeq`, arriving `lateMs` after its due time. */
function count(stats: ReceptionStats, i: number, lateMs = 0, firstSeq = 0, ssrc = SSRC): number {
  const seq = firstSeq + i;
  return stats.count(ssrc, Math.floor(seq / 0x10000), seq % 0x10000, i * FRAME_TICKS, 1000 + i * FRAME_MS + lateMs);
}

/** What a receiver report and a quality view read. */
function figures(stats: ReceptionStats) {
  const { ssrc, expected, received, packetsLost, jitter } = stats;
  return { ssrc, expected, received, packetsLost, jitter };
}

/** J after `n` transit differences all of `d` ticks, from 0: J_n = d (1 - (15/16)^n). */
const converging = (d: number, n: number) => d * (1 - (15 / 16) ** n);

describe("RFC 3550 reception statistics", () => {
  it("knows nothing before the first packet", () => {
    const stats = new ReceptionStats();
    assert.equal(stats.ssrc, -1, "the sign that there are no figures yet");
    assert.equal(stats.received, 0);
  });

  it("counts a stream arriving on time as no loss and no jitter", () => {
    const stats = new ReceptionStats();
    for (let i = 0; i < 100; i++) count(stats, i);
    assert.deepEqual(figures(stats), { ssrc: SSRC, expected: 100, received: 100, packetsLost: 0, jitter: 0 });
    assert.equal(stats.jitterMs, 0);
    assert.equal(stats.fractionLostSinceLast(), 0);
  });

  it("counts the packets missing between the first and the highest sequence number as lost, and the fraction per report interval", () => {
    const stats = new ReceptionStats();
    // First interval: 100 expected, every tenth lost.
    for (let i = 0; i < 100; i++) if (i % 10 !== 5) count(stats, i);
    assert.equal(stats.expected, 100);
    assert.equal(stats.packetsLost, 10);
    assert.equal(stats.fractionLostSinceLast(), 0.1);
    // Second interval: 50 more, every other one lost.
    for (let i = 100; i < 150; i++) if (i % 2 === 1) count(stats, i);
    assert.equal(stats.packetsLost, 35);
    assert.equal(stats.fractionLostSinceLast(), 0.5);
    // Third: none lost; nothing received at all.
    for (let i = 150; i < 160; i++) count(stats, i);
    assert.equal(stats.fractionLostSinceLast(), 0);
    assert.equal(stats.fractionLostSinceLast(), 0, "an interval with nothing expected");
    assert.equal(stats.packetsLost, 35, "the cumulative count goes on");
  });

  it("never counts below zero lost when duplicates outnumber the losses", () => {
    const stats = new ReceptionStats();
    for (let i = 0; i < 10; i++) count(stats, i);
    for (let i = 0; i < 5; i++) count(stats, i);
    assert.equal(stats.received, 15);
    assert.equal(stats.packetsLost, 0);
    assert.equal(stats.fractionLostSinceLast(), 0);
  });

  it("extends sequence numbers with the rollover counter across the 16-bit wrap", () => {
    const stats = new ReceptionStats();
    for (let i = 0; i < 12; i++) if (i !== 8) count(stats, i, 0, 65_530);
    assert.equal(stats.max, 65_536 + 5);
    assert.equal(stats.expected, 12);
    assert.equal(stats.packetsLost, 1, "one lost just after the wrap");
  });

  it("measures interarrival jitter as RFC 3550 A.8 does: 5 ms late every other packet converges on 5 ms", () => {
    const stats = new ReceptionStats();
    const packets = 200;
    for (let i = 0; i < packets; i++) count(stats, i, i % 2 === 1 ? 5 : 0);
    // Each consecutive pair's transit differs by 5 ms = 240 ticks.
    assert.ok(Math.abs(stats.jitter - converging(240, packets - 1)) < 1e-9, `jitter ${stats.jitter} ticks`);
    assert.ok(Math.abs(stats.jitterMs - 5) < 0.01, `jitter ${stats.jitterMs} ms`);
  });

  it("takes a constant delay for no jitter, and converts ticks to ms at the stream's clock rate", () => {
    const steady = new ReceptionStats();
    for (let i = 0; i < 50; i++) count(steady, i, 70);
    assert.equal(steady.jitter, 0);
    // PCMU at 8 kHz: 160 ticks per 20 ms; 5 ms late every other packet is 40 ticks of jitter.
    const pcmu = new ReceptionStats(8000);
    for (let i = 0; i < 200; i++) pcmu.count(SSRC, 0, i, i * 160, 1000 + i * FRAME_MS + (i % 2) * 5);
    assert.ok(Math.abs(pcmu.jitter - converging(40, 199)) < 1e-9, `jitter ${pcmu.jitter} ticks`);
    assert.ok(Math.abs(pcmu.jitterMs - 5) < 0.01, `jitter ${pcmu.jitterMs} ms`);
  });

  it("returns how far each packet's timestamp is past the previous one, across the 32-bit wrap", () => {
    const stats = new ReceptionStats();
    assert.equal(stats.count(SSRC, 0, 1, 0xffff_fe00, 0), 0, "the first packet");
    assert.equal(stats.count(SSRC, 0, 2, 0x0000_01c0, 20), FRAME_TICKS);
    assert.equal(stats.count(SSRC, 0, 3, 0x0000_01c0 + 3 * FRAME_TICKS, 80), 3 * FRAME_TICKS, "after a DTX gap");
    assert.equal(stats.jitter, 0, "the wrap is no jitter");
  });

  it("starts over when a new SSRC appears (the sender restarted its stream)", () => {
    const stats = new ReceptionStats();
    for (let i = 0; i < 100; i++) if (i % 4 !== 0) count(stats, i, i % 2 === 1 ? 5 : 0);
    assert.ok(stats.packetsLost > 0 && stats.jitter > 0);
    assert.equal(count(stats, 0, 0, 30_000, 99), 0, "no timestamp advance for a new source");
    assert.deepEqual(figures(stats), { ssrc: 99, expected: 1, received: 1, packetsLost: 0, jitter: 0 });
    assert.equal(stats.fractionLostSinceLast(), 0);
  });
});
