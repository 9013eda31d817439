/**
 * When a connection's RTCP reports go out (report-pacing.ts): at once the first time, then every
 * 2.5 to 7.5 s (RFC 3550's 5 s randomised), and at the next check when the loss to report rises
 * by two points or more, so the client's FEC follows a loss onset.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LOSS_RISE, REPORT_INTERVAL_MS, ReportPacing } from "@parley/rtc";

describe("RTCP report pacing", () => {
  it("reports at once, then not before half the interval, and always after 1.5 times it", () => {
    for (let run = 0; run < 200; run++) {
      const pacing = new ReportPacing();
      assert.equal(pacing.due(1000, 0), true, "the first report");
      pacing.sent(1000, 0);
      assert.equal(pacing.due(1000 + REPORT_INTERVAL_MS * 0.5 - 1, 0), false, "too early");
      assert.equal(pacing.due(1000 + REPORT_INTERVAL_MS * 1.5, 0), true, "due");
    }
  });

  it("spreads the intervals over 0.5 to 1.5 times 5 s", () => {
    const intervals: number[] = [];
    for (let run = 0; run < 200; run++) {
      const pacing = new ReportPacing();
      pacing.sent(0, 0);
      let at = 0;
      while (!pacing.due(at, 0)) at += 10;
      intervals.push(at);
    }
    assert.ok(Math.min(...intervals) < REPORT_INTERVAL_MS * 0.75, `shortest ${Math.min(...intervals)} ms`);
    assert.ok(Math.max(...intervals) > REPORT_INTERVAL_MS * 1.25, `longest ${Math.max(...intervals)} ms`);
  });

  it("reports a rise in loss at once, and a fall or a small rise at the next interval", () => {
    const pacing = new ReportPacing();
    pacing.sent(0, 0.01);
    assert.equal(pacing.due(1000, 0.01 + LOSS_RISE / 2), false, "a small rise waits");
    assert.equal(pacing.due(1000, 0), false, "a fall waits");
    assert.equal(pacing.due(1000, 0.01 + LOSS_RISE), true, "a rise goes out early");
    pacing.sent(1000, 0.05);
    assert.equal(pacing.due(2000, 0.05), false, "the same loss waits for the interval");
  });
});
