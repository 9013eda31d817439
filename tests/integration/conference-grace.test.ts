/**
 * A conference outlives one participant's signaling connection: of three bots, the one on another
 * machine (a network namespace) loses its TCP to the server for 10 s mid-call (nft drops it; media is
 * UDP and goes on). The server keeps that participant for its grace period and tells the others it
 * is reconnecting; it comes back and takes the call back with auth.resume. Each bot's recording
 * holds both other tones, second after second, through the cut; everyone hangs up as scripted (the
 * participant that was cut among them), and each history shows the one call.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { tone, writeWav } from "@parley/audio";
import { BotExit } from "@parley/cli";
import {
  type BotRun,
  createNetworkLab,
  type LabHost,
  loggedIn,
  type NetworkLab,
  networkLabUnavailable,
  runBot,
  startTestServer,
  type TestServer,
  tempDir,
  waitFor,
} from "@parley/testkit";
import { toneTimeline } from "./bot-calls.js";

const PASSWORD = "bot password 1";
/** Quieter tones, so two of them mixed at a listener do not clip. */
const AMPLITUDE = 0.3;
/** `toneLevel` is the tone's squared amplitude: this is half the sent amplitude. */
const HEARD = (AMPLITUDE / 2) ** 2;
/** How long all three talk together: the caller hangs up first, this long after its answer. */
const TOGETHER_S = 26;

const CALLER = { user: "conf-desk", hz: 500 };
const ROAMER = { user: "conf-roamer", hz: 700 };
const OTHER = { user: "conf-office", hz: 1100 };
const PARTIES = [CALLER, ROAMER, OTHER];

describe("a conference where one participant's signaling connection drops", { skip: networkLabUnavailable() }, () => {
  let lab: NetworkLab;
  let roaming: LabHost;
  let t: TestServer;
  let dir: string;

  before(async () => {
    lab = await createNetworkLab();
    roaming = await lab.addHost("roaming");
    dir = tempDir("parley-conference-grace-");
    t = await startTestServer({
      host: lab.hostAddress,
      media: { ip: lab.hostAddress, portMin: 40000, portMax: 49999 },
      // A 2 s heartbeat: the server sees the connection gone during the cut (5 s by default).
      heartbeatMs: 2000,
      callGraceMs: 30_000,
    });
  });
  after(async () => {
    await t?.stop();
    await lab?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  function args(party: { user: string; hz: number }, extra: string[]): string[] {
    const play = path.join(dir, `tone-${party.hz}.wav`);
    if (!fs.existsSync(play)) writeWav(play, tone(party.hz, 2, AMPLITUDE));
    return [
      ...["--server", `${lab.hostAddress}:${t.server.port}`, "--user", party.user, "--password", PASSWORD],
      ...["--register", "--play", play, "--record", path.join(dir, `${party.user}.wav`), ...extra],
    ];
  }

  /**
   * Per whole second of `listener`'s recording, from its second second to `seconds`: whether `hz`
   * is heard ("T") or not ("."), measured on its own in the mix.
   */
  function timeline(listener: string, hz: number, seconds: number): string {
    return toneTimeline(path.join(dir, `${listener}.wav`), hz, 1, HEARD).slice(1, seconds);
  }

  it("keeps everyone hearing everyone through a 10 s cut, then all hang up normally with one call in the history", async () => {
    const trace = path.join(dir, "desk-trace.jsonl");
    // The roamer hangs up last but one (after the caller): its signaling works again after the cut.
    const roamer = runBot("answer", args(ROAMER, ["--wait", "60", "--duration", String(TOGETHER_S + 4)]), {
      wrap: roaming.wrap,
    });
    const office = runBot("answer", args(OTHER, ["--wait", "60"]));
    const bots: BotRun[] = [roamer, office];
    const outputs = () => bots.map((bot) => bot.output()).join("\n");
    await waitFor(() => bots.every((bot) => bot.output().includes("waiting for a call")), "the invitees waiting", {
      timeoutMs: 60_000, // registering queues for a password hash
    }).catch((error: Error) => {
      throw new Error(`${error.message}\n${outputs()}`);
    });
    const desk = runBot(
      "call",
      args(CALLER, ["--to", `${ROAMER.user},${OTHER.user}`, "--duration", String(TOGETHER_S), "--trace", trace]),
    );
    bots.unshift(desk);
    await waitFor(() => bots.every((bot) => /media connected/.test(bot.output())), "everyone's media connected", {
      timeoutMs: 20_000,
    }).catch((error: Error) => {
      throw new Error(`${error.message}\n${outputs()}`);
    });
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await roaming.block({ tcp: true });
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    await roaming.unblock();

    const codes = await Promise.all(bots.map((bot) => bot.exited));
    assert.deepEqual(codes, [BotExit.COMPLETED, BotExit.COMPLETED, BotExit.COMPLETED], outputs());
    assert.match(roamer.output(), /signaling connection lost: reconnecting/);
    assert.match(roamer.output(), /signaling connection back/);
    // The caller hung up, then the roamer; the office was left alone, which ended the call.
    assert.match(desk.output(), /ended: hangup by conf-desk \(answered\)/);
    assert.match(roamer.output(), /ended: hangup by conf-roamer \(answered\)/);
    assert.match(office.output(), /ended: hangup by conf-roamer \(answered\)/);
    // The roamer never left the conference while the others were in it.
    assert.doesNotMatch(desk.output(), /conf-roamer left/, desk.output());

    // The caller was told the roamer was reconnecting, then that it was back.
    const infos = fs
      .readFileSync(trace, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { type: string; event?: string; data?: { call?: CallInfoLike } })
      .filter((m) => m.type === "event" && m.event === "call.info")
      .map((m) => m.data!.call!.participants.find((p) => p.username === ROAMER.user));
    const states = infos.map((p) => (p?.reconnecting ? "reconnecting" : (p?.state ?? "absent")));
    const first = states.indexOf("reconnecting");
    assert.ok(first >= 0, `the caller never saw the roamer reconnecting: ${states.join(", ")}`);
    assert.ok(states.slice(first).includes("connected"), `the caller never saw the roamer back: ${states.join(", ")}`);

    // Everyone heard both others in every second they were together, the cut included.
    const heard = PARTIES.flatMap((listener) =>
      PARTIES.filter((p) => p !== listener).map((speaker) => {
        const line = timeline(listener.user, speaker.hz, TOGETHER_S - 2);
        console.log(`${listener.user} hears ${speaker.user} (${speaker.hz} Hz): ${line}`);
        return { listener, speaker, line, share: [...line].filter((c) => c === "T").length / Math.max(1, line.length) };
      }),
    );
    for (const { listener, speaker, line, share } of heard) {
      assert.ok(line.length >= TOGETHER_S - 6, `${listener.user}'s recording holds ${line.length + 1} s`);
      assert.ok(
        share >= 0.95,
        `${listener.user} heard ${speaker.user} in only ${(share * 100).toFixed(0)} % of seconds: ${line}\n${outputs()}`,
      );
    }

    for (const { user } of PARTIES) {
      const { client } = await loggedIn(t.url, user, PASSWORD);
      const { calls } = await client.call<{ calls: { conference: boolean; outcome: string }[] }>("call.history");
      client.close();
      assert.deepEqual(
        calls.map((c) => [c.conference, c.outcome]),
        [[true, "answered"]],
        `${user}'s history holds the one conference`,
      );
    }
  });
});

interface CallInfoLike {
  participants: { username: string; state: string; reconnecting?: boolean }[];
}
