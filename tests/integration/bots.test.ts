import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { dominantFrequency, readWav, SAMPLE_RATE, tone, toneLevel, writeWav } from "@parley/audio";
import { registered, runBot, startTestServer, type TestServer, tempDir, waitFor } from "@parley/testkit";
import { answeredCandidates } from "./bot-calls.js";

let t: TestServer;
let dir: string;
before(async () => {
  // A short call grace period: a killed bot is not coming back (see "a bot killed mid-call").
  t = await startTestServer({ callGraceMs: 2000 });
  dir = tempDir("parley-bots-");
});
after(async () => {
  await t.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const PASSWORD = "bot password 1";
/**
 * How long a bot may take to say it is registered: bots started together queue for one password
 * hash at a time, run below the relay's priority, so on a loaded 2-core machine it takes a while.
 */
const REGISTERED_TIMEOUT_MS = 60_000;

function toneFile(hz: number, amplitude = 0.5): string {
  const file = path.join(dir, `tone-${hz}-${amplitude}.wav`);
  if (!fs.existsSync(file)) writeWav(file, tone(hz, 2, amplitude));
  return file;
}

function common(user: string, hz: number, bind = "127.0.0.1", amplitude = 0.5) {
  return [
    "--server",
    t.url,
    "--user",
    user,
    "--password",
    PASSWORD,
    "--register",
    "--play",
    toneFile(hz, amplitude),
    "--record",
    path.join(dir, `${user}.wav`),
    "--bind",
    bind,
  ];
}

/** The recording's steady part (the first half second is skipped: jitter buffer and codec warm-up). */
function heard(user: string): Int16Array {
  const samples = readWav(path.join(dir, `${user}.wav`));
  return samples.subarray(Math.round(SAMPLE_RATE * 0.5));
}

/** Places one call between two bots; resolves with both exit codes and outputs. */
async function botCall(
  callee: string,
  calleeHz: number,
  caller: string,
  callerHz: number,
  extra: { bind?: [string, string]; trace?: boolean; seconds?: number } = {},
) {
  const [callerBind, calleeBind] = extra.bind ?? ["127.0.0.1", "127.0.0.1"];
  const trace = (user: string) => (extra.trace ? ["--trace", path.join(dir, `${user}.trace`)] : []);
  const answer = runBot("answer", [...common(callee, calleeHz, calleeBind), "--wait", "60", ...trace(callee)]);
  await waitFor(() => answer.output().includes("waiting for a call"), `${callee} waiting`, {
    timeoutMs: REGISTERED_TIMEOUT_MS,
  });
  const call = runBot("call", [
    ...common(caller, callerHz, callerBind),
    "--to",
    callee,
    "--duration",
    String(extra.seconds ?? 4),
    ...trace(caller),
  ]);
  const [callerCode, calleeCode] = await Promise.all([call.exited, answer.exited]);
  return { callerCode, calleeCode, callerOut: call.output(), calleeOut: answer.output() };
}

function assertHears(user: string, hz: number, others: number[]) {
  const samples = heard(user);
  assert.ok(samples.length > SAMPLE_RATE * 1.5, `${user} recorded ${samples.length} samples`);
  const dominant = dominantFrequency(samples);
  assert.ok(Math.abs(dominant - hz) < 15, `${user} hears ${dominant} Hz, expected ${hz} Hz`);
  const level = toneLevel(samples, hz);
  assert.ok(level > 0.05, `${user}: level of ${hz} Hz is ${level}`);
  for (const other of others) {
    const leak = toneLevel(samples, other);
    assert.ok(leak < level / 50, `${user} hears ${other} Hz at ${leak} (own peer ${level}): crosstalk or echo`);
  }
}

/**
 * The recording as a string of 0.25 s windows: "T" where the tone is clearly there, "S" where
 * all is silent, "?" in between, so tests can match patterns such as tone, then silence, then tone.
 */
function toneTimeline(user: string, hz: number, file = `${user}.wav`): string {
  const samples = readWav(path.join(dir, file));
  const window = SAMPLE_RATE / 4;
  let timeline = "";
  for (let start = 0; start + window <= samples.length; start += window) {
    const part = samples.subarray(start, start + window);
    const level = toneLevel(part, hz);
    timeline += level > 0.05 ? "T" : level < 0.001 ? "S" : "?";
  }
  return timeline;
}

describe("parley call and parley answer bots", () => {
  it("relay each side's voice to the other through the server", async () => {
    const result = await botCall("ann", 440, "cal", 1000);
    assert.equal(result.callerCode, 0, result.callerOut);
    assert.equal(result.calleeCode, 0, result.calleeOut);
    assert.match(result.callerOut, /ended: hangup by cal \(answered\)/);
    assertHears("ann", 1000, [440]);
    assertHears("cal", 440, [1000]);
  });

  it("keep three simultaneous calls apart: each side hears only its own peer", async () => {
    const tones = [500, 700, 900, 1100, 1300, 1500];
    const results = await Promise.all([
      botCall("c1-callee", tones[0]!, "c1-caller", tones[1]!, { seconds: 6 }),
      botCall("c2-callee", tones[2]!, "c2-caller", tones[3]!, { seconds: 6 }),
      botCall("c3-callee", tones[4]!, "c3-caller", tones[5]!, { seconds: 6 }),
    ]);
    for (const r of results) {
      assert.equal(r.callerCode, 0, r.callerOut);
      assert.equal(r.calleeCode, 0, r.calleeOut);
    }
    for (let i = 0; i < 3; i++) {
      const calleeHz = tones[2 * i]!;
      const callerHz = tones[2 * i + 1]!;
      const others = (exclude: number) => tones.filter((hz) => hz !== exclude);
      assertHears(`c${i + 1}-callee`, callerHz, others(callerHz));
      assertHears(`c${i + 1}-caller`, calleeHz, others(calleeHz));
    }
  });

  it("never give a client the other client's address: not in signaling, SDP or ICE candidates", async () => {
    const result = await botCall("priv-b", 440, "priv-a", 1000, { bind: ["127.0.0.2", "127.0.0.3"], trace: true });
    assert.equal(result.callerCode, 0, result.callerOut);
    assert.equal(result.calleeCode, 0, result.calleeOut);
    assertHears("priv-b", 1000, [440]);
    const traceA = fs.readFileSync(path.join(dir, "priv-a.trace"), "utf8");
    const traceB = fs.readFileSync(path.join(dir, "priv-b.trace"), "utf8");
    assert.ok(!traceA.includes("127.0.0.3"), "the caller received the callee's address");
    assert.ok(!traceB.includes("127.0.0.2"), "the callee received the caller's address");
    // Each bot got an SDP answer whose only candidate address is the server's media address.
    for (const trace of [traceA, traceB]) {
      for (const c of answeredCandidates(trace)) assert.match(c, / 127\.0\.0\.1 \d+ typ host/, c);
    }
  });

  it("end the call for the caller when the callee's process dies mid-call", async () => {
    const answer = runBot("answer", [...common("doomed", 440), "--wait", "60"]);
    await waitFor(() => answer.output().includes("waiting for a call"), "doomed waiting", {
      timeoutMs: REGISTERED_TIMEOUT_MS,
    });
    const call = runBot("call", [...common("survivor", 1000), "--to", "doomed", "--duration", "30"]);
    await waitFor(() => answer.output().includes("answered"), "call answered", { timeoutMs: 20_000 });
    answer.child.kill("SIGKILL");
    const started = Date.now();
    assert.equal(await call.exited, 7, call.output());
    assert.ok(Date.now() - started < 10_000, "the caller learned within the documented bound");
    assert.match(call.output(), /ended: connection_lost \(answered\)/);
    const live = await t.server.commands.run(["calls"]);
    assert.match(live.output, /0 live call\(s\)/);
  });

  it("silence both directions while a call is on hold, and restore them on resume", async () => {
    const answer = runBot("answer", [...common("holder", 440), "--wait", "60", "--hold-at", "3", "--resume-at", "6"]);
    await waitFor(() => answer.output().includes("waiting for a call"), "holder waiting", {
      timeoutMs: REGISTERED_TIMEOUT_MS,
    });
    const call = runBot("call", [...common("held-caller", 1000), "--to", "holder", "--duration", "9"]);
    assert.deepEqual(await Promise.all([call.exited, answer.exited]), [0, 0], `${call.output()}\n${answer.output()}`);
    assert.match(answer.output(), /putting the call on hold/);
    // Each side hears the other, then 1.5 s or more of silence, then the other again.
    assert.match(toneTimeline("held-caller", 440), /T{2}.*S{6}.*T{2}/);
    assert.match(toneTimeline("holder", 1000), /T{2}.*S{6}.*T{2}/);
  });

  it("answer a waiting call (holding the first) and switch back to the first call", async () => {
    const b = runBot("answer", [...common("waiter", 700), "--wait", "60", "--answer-waiting", "--switch-at", "5"]);
    await waitFor(() => b.output().includes("waiting for a call"), "waiter waiting", {
      timeoutMs: REGISTERED_TIMEOUT_MS,
    });
    const a = runBot("call", [...common("first-caller", 500), "--to", "waiter", "--duration", "18"]);
    await waitFor(() => b.output().includes("answered: talking"), "first call answered", { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 1500));
    const c = runBot("call", [...common("second-caller", 900), "--to", "waiter", "--duration", "10"]);
    const codes = await Promise.all([a.exited, b.exited, c.exited]);
    assert.deepEqual(codes, [0, 0, 0], `${a.output()}\n${b.output()}\n${c.output()}`);
    assert.match(b.output(), /call waiting from second-caller: answering/);
    assert.match(b.output(), /switching back to the first call/);
    // The first caller hears the waiter, silence while the waiter talks to the second caller, then the waiter again.
    assert.match(toneTimeline("first-caller", 700), /T{2}.*S{6}.*T{2}/);
    // The second caller hears the waiter until the switch (5 s), then nothing more: it is held
    // until it hangs up at 10 s, so its recording (which ends with the last packet) stops early.
    assert.match(c.output(), /call 1 on hold by waiter/);
    const second = toneTimeline("second-caller", 700);
    // On failure, the outputs tell when each call's media connected ("media connected N ms after the answer").
    assert.match(second, /T{8,}/, `second caller heard ${second}\n${b.output()}\n${c.output()}`);
    assert.ok(second.length <= 28, `the second caller heard ${second.length / 4} s, beyond the switch`);
    // The waiter's recording of the second call holds the second caller's tone, never the first's.
    assert.match(toneTimeline("waiter", 900, "waiter-2.wav"), /T{4}/);
    assert.doesNotMatch(toneTimeline("waiter", 500, "waiter-2.wav"), /T/);
  });

  it("hold a four-party group call where each hears the three others and never itself", async () => {
    // Quieter tones, so three of them mixed at a listener do not clip.
    const parties = [
      { user: "conf-a", hz: 500 },
      { user: "conf-b", hz: 700 },
      { user: "conf-c", hz: 1100 },
      { user: "conf-d", hz: 1300 },
    ];
    const [caller, ...invitees] = parties as [(typeof parties)[0], ...typeof parties];
    const answers = invitees.map(({ user, hz }) =>
      runBot("answer", [...common(user, hz, "127.0.0.1", 0.2), "--wait", "60", "--duration", "8"]),
    );
    for (const [i, answer] of answers.entries()) {
      await waitFor(() => answer.output().includes("waiting for a call"), `${invitees[i]!.user} waiting`, {
        timeoutMs: REGISTERED_TIMEOUT_MS,
      });
    }
    const call = runBot("call", [
      ...common(caller.user, caller.hz, "127.0.0.1", 0.2),
      "--to",
      invitees.map((p) => p.user).join(","),
      "--duration",
      "10",
    ]);
    const codes = await Promise.all([call.exited, ...answers.map((a) => a.exited)]);
    const outputs = [call.output(), ...answers.map((a) => a.output())].join("\n");
    assert.deepEqual(codes, [0, 0, 0, 0], outputs);
    assert.match(call.output(), /conference: conf-b connected, conf-c connected, conf-d connected/);
    for (const { user, hz } of parties) {
      const samples = heard(user);
      assert.ok(samples.length > SAMPLE_RATE * 3, `${user} recorded ${samples.length} samples`);
      const others = parties.filter((p) => p.user !== user).map((p) => toneLevel(samples, p.hz));
      for (const [i, level] of others.entries()) {
        assert.ok(level > 0.03, `${user} hears ${parties.filter((p) => p.user !== user)[i]!.hz} Hz at ${level}`);
      }
      const own = toneLevel(samples, hz);
      assert.ok(own < Math.min(...others) / 50, `${user} hears its own ${hz} Hz at ${own}: echo`);
    }
  });

  it("add a third participant to a running call, turning it into a conference", async () => {
    const b = runBot("answer", [...common("grow-b", 700, "127.0.0.1", 0.25), "--wait", "60", "--duration", "9"]);
    const c = runBot("answer", [...common("grow-c", 1100, "127.0.0.1", 0.25), "--wait", "60", "--duration", "5"]);
    await waitFor(
      () => b.output().includes("waiting for a call") && c.output().includes("waiting for a call"),
      "b and c",
      { timeoutMs: REGISTERED_TIMEOUT_MS },
    );
    const a = runBot("call", [
      ...common("grow-a", 500, "127.0.0.1", 0.25),
      ...["--to", "grow-b", "--add", "grow-c", "--add-at", "2", "--duration", "11"],
    ]);
    const codes = await Promise.all([a.exited, b.exited, c.exited]);
    assert.deepEqual(codes, [0, 0, 0], `${a.output()}\n${b.output()}\n${c.output()}`);
    assert.match(a.output(), /inviting grow-c/);
    // C left after 5 s; A and B went on talking until B hung up.
    assert.match(a.output(), /conference: grow-b connected, grow-c left/);
    const heardBy = (user: string, hz: number) => toneLevel(heard(user), hz);
    assert.ok(heardBy("grow-c", 500) > 0.03 && heardBy("grow-c", 700) > 0.03, "C hears A and B");
    assert.ok(heardBy("grow-a", 700) > 0.03 && heardBy("grow-a", 1100) > 0.02, "A hears B and C");
    assert.ok(heardBy("grow-b", 500) > 0.03 && heardBy("grow-b", 1100) > 0.02, "B hears A and C");
    assert.ok(heardBy("grow-c", 1100) < 0.001, "C does not hear itself");
  });

  it("report how a call ended in the exit code", async () => {
    // Unreachable: nobody is logged in as the callee.
    const registerOnly = runBot("call", [...common("lonely", 500), "--to", "ann"]);
    assert.equal(await registerOnly.exited, 5, registerOnly.output());
    // Do-not-disturb: a callee whose status is "busy" refuses the call as busy (exit code 3).
    const dnd = await registered(t.url, "dnd-callee");
    await dnd.client.call("presence.set", { status: "busy" });
    const refused = runBot("call", [...common("dnd-caller", 500), "--to", "dnd-callee"]);
    assert.equal(await refused.exited, 3, refused.output());
    assert.match(refused.output(), /USER_BUSY/);
    const missed = await dnd.client.call<{ calls: { outcome: string; missed: boolean }[] }>("call.history");
    assert.deepEqual(
      missed.calls.map((c) => [c.outcome, c.missed]),
      [["busy", true]],
    );
    dnd.client.close();
    // No call arrives for `parley answer` within --wait.
    const idle = runBot("answer", [...common("idle", 500), "--wait", "1"]);
    assert.equal(await idle.exited, 7, idle.output());
    // A wrong password is an error.
    const bad = runBot("call", ["--server", t.url, "--user", "ann", "--password", "wrong password", "--to", "cal"]);
    assert.equal(await bad.exited, 1);
    assert.match(bad.output(), /INVALID_CREDENTIALS|Wrong username or password/);
  });
});
