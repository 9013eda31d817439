/**
 * Calls between two `parley` bot processes for tests: each side plays its own tone and records what
 * it hears, and can run anywhere (e.g. inside a network namespace, through `wrap`).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import { dominantFrequency, readWav, SAMPLE_RATE, tone, toneLevel, writeWav } from "@parley/audio";
import { BotExit } from "@parley/cli";
import { type BotRun, runBot, tempDir, waitFor } from "@parley/testkit";

export const BOT_PASSWORD = "bot password 1";

/**
 * A recording as windows of `windowSeconds`: "T" where `hz` is clearly there (level above
 * `threshold`), "." where not, so tests can check audio second by second.
 */
export function toneTimeline(file: string, hz: number, windowSeconds: number, threshold = 0.05): string {
  const samples = readWav(file);
  const window = Math.round(SAMPLE_RATE * windowSeconds);
  let line = "";
  for (let start = 0; start + window <= samples.length; start += window) {
    line += toneLevel(samples.subarray(start, start + window), hz) > threshold ? "T" : ".";
  }
  return line;
}

/**
 * The ICE candidates of the one SDP answer the server sent a bot, from the bot's signaling trace
 * (`--trace`: one JSON message per line); fails unless there is exactly one such answer.
 */
export function answeredCandidates(trace: string): string[] {
  const answers = trace
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .filter((m) => m.type === "response" && m.ok && typeof m.result?.sdp === "string")
    .map((m) => m.result.sdp as string);
  assert.equal(answers.length, 1, "one SDP answer");
  const candidates = answers[0]!.split(/\r?\n/).filter((l) => l.startsWith("a=candidate"));
  assert.ok(candidates.length > 0, "the answer has candidates");
  return candidates;
}

export interface Side {
  user: string;
  hz: number;
  server: string;
  extra?: string[];
  /** Turns the bot's command line into the one to run, e.g. inside a network namespace. */
  wrap?: (argv: string[]) => string[];
}

export interface BotCalls {
  /** The folder of the tones and recordings. */
  dir(): string;
  /** A bot's arguments: `server` exactly as a user would write it, plus `extra` (no --bind unless given). */
  botArgs(server: string, user: string, hz: number, extra?: string[]): string[];
  /** One call between two bots (the callee waits first), both expected to complete. */
  botCall(callee: Side, caller: Side, seconds?: number): Promise<{ caller: BotRun; callee: BotRun }>;
  /** The bot's recording holds the other side's tone (the first half second skipped: codec warm-up). */
  assertHears(user: string, hz: number, bots: { caller: BotRun; callee: BotRun }): void;
}

/** Registers the file's hooks for a temporary folder and returns the helpers that use it. */
export function useBotCalls(prefix: string): BotCalls {
  let dir = "";
  before(() => {
    dir = tempDir(prefix);
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const toneFile = (hz: number): string => {
    const file = path.join(dir, `tone-${hz}.wav`);
    if (!fs.existsSync(file)) writeWav(file, tone(hz, 2, 0.5));
    return file;
  };

  const botArgs = (server: string, user: string, hz: number, extra: string[] = []): string[] => [
    "--server",
    server,
    "--user",
    user,
    "--password",
    BOT_PASSWORD,
    "--register",
    "--play",
    toneFile(hz),
    "--record",
    path.join(dir, `${user}.wav`),
    ...extra,
  ];

  return {
    dir: () => dir,
    botArgs,
    async botCall(callee, caller, seconds = 4) {
      const answer = runBot(
        "answer",
        [...botArgs(callee.server, callee.user, callee.hz, callee.extra), "--wait", "60"],
        callee.wrap ? { wrap: callee.wrap } : {},
      );
      await waitFor(() => answer.output().includes("waiting for a call"), `${callee.user} waiting`, {
        timeoutMs: 60_000, // registering queues for a password hash
      }).catch((error: Error) => {
        throw new Error(`${error.message}\n${answer.output()}`);
      });
      const call = runBot(
        "call",
        [
          ...botArgs(caller.server, caller.user, caller.hz, caller.extra),
          "--to",
          callee.user,
          "--duration",
          String(seconds),
        ],
        caller.wrap ? { wrap: caller.wrap } : {},
      );
      const [callerCode, calleeCode] = await Promise.all([call.exited, answer.exited]);
      assert.equal(callerCode, BotExit.COMPLETED, call.output());
      assert.equal(calleeCode, BotExit.COMPLETED, answer.output());
      return { caller: call, callee: answer };
    },
    assertHears(user, hz, bots) {
      const samples = readWav(path.join(dir, `${user}.wav`)).subarray(SAMPLE_RATE / 2);
      const outputs = `${bots.caller.output()}\n${bots.callee.output()}`;
      assert.ok(samples.length > SAMPLE_RATE * 1.5, `${user} recorded ${samples.length} samples\n${outputs}`);
      const dominant = dominantFrequency(samples);
      assert.ok(Math.abs(dominant - hz) < 15, `${user} hears ${dominant} Hz, expected ${hz} Hz\n${outputs}`);
      assert.ok(toneLevel(samples, hz) > 0.05, `${user}: level of ${hz} Hz is ${toneLevel(samples, hz)}`);
    },
  };
}
