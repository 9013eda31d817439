// Preloaded into the benchmarked server process (`node --expose-gc --import .../server-probe.mjs`).
// Until the bench sends SIGUSR2 it only counts garbage-collection pauses (a PerformanceObserver,
// one callback per GC). On SIGUSR2 it writes to $BENCH_PROBE_FILE the process's memory, its
// event-loop utilisation and its GC pauses since the previous signal, after two full garbage
// collections first if the file $BENCH_PROBE_FILE.gc exists. It touches no server code.
import fs from "node:fs";
import { PerformanceObserver, performance } from "node:perf_hooks";

// Experiment (BENCH_SERVER_EXPERIMENT=no-rtp-history, used by the relay GC experiment): werift's
// RTCRtpSender keeps its last 128 sent packets for retransmission (rtpCache), even for audio without
// NACK. Replacing each sender's cache with a write-only stand-in tests whether that history is what
// fills V8's old generation and triggers the major collections.
if (process.env.BENCH_SERVER_EXPERIMENT === "no-rtp-history") {
  const { RTCRtpSender } = await import("werift");
  const sendRtp = RTCRtpSender.prototype.sendRtp;
  const discard = new Proxy([], { set: () => true });
  RTCRtpSender.prototype.sendRtp = function (rtp) {
    if (this.rtpCache !== discard) this.rtpCache = discard;
    return sendRtp.call(this, rtp);
  };
}

const file = process.env.BENCH_PROBE_FILE;
if (file) {
  let lastElu = performance.eventLoopUtilization();
  let pauses = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push(entry.duration);
  });
  observer.observe({ entryTypes: ["gc"] });
  process.on("SIGUSR2", () => {
    const since = pauses;
    pauses = [];
    if (typeof globalThis.gc === "function" && fs.existsSync(`${file}.gc`)) {
      globalThis.gc();
      globalThis.gc();
    }
    const elu = performance.eventLoopUtilization(lastElu);
    lastElu = performance.eventLoopUtilization();
    since.sort((a, b) => a - b);
    const snapshot = {
      at: Date.now(),
      memory: process.memoryUsage(),
      eventLoopUtilization: elu.utilization,
      gc: {
        count: since.length,
        totalMs: since.reduce((a, b) => a + b, 0),
        maxMs: since.at(-1) ?? 0,
        p99Ms: since[Math.max(0, Math.ceil(since.length * 0.99) - 1)] ?? 0,
      },
    };
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(snapshot));
    fs.renameSync(`${file}.tmp`, file);
  });
}
