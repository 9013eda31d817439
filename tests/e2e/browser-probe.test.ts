/**
 * Checks the end-to-end infrastructure itself, without the app: each Chromium's fake microphone plays
 * its own WAV, and `receivedAudio` measures a WebRTC stream on a remote-audio element correctly.
 * The page is served by a throwaway HTTP server on 127.0.0.1 (a secure context for getUserMedia).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import {
  type BrowserUser,
  launchBrowserUsers,
  receivedAudio,
  tempDir,
  toneWav,
  waitForReceivedAudio,
} from "@parley/testkit";

/** Loops the microphone through two RTCPeerConnections onto <audio data-testid="remote-audio">. */
const PAGE = `<!doctype html><html><body><audio data-testid="remote-audio" autoplay></audio><script>
window.ready = (async () => {
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  const a = new RTCPeerConnection();
  const b = new RTCPeerConnection();
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  b.ontrack = (e) => { document.querySelector("audio").srcObject = e.streams[0]; };
  for (const track of mic.getTracks()) a.addTrack(track, mic);
  await a.setLocalDescription();
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription();
  await a.setRemoteDescription(b.localDescription);
  window.mic = mic;
})();
</script></body></html>`;

let dir: string;
let server: http.Server;
let url: string;
const users: BrowserUser[] = [];

before(
  async () => {
    dir = tempDir("parley-probe-");
    server = http.createServer((_request, response) => {
      response.writeHead(200, { "content-type": "text/html" });
      response.end(PAGE);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  },
  { timeout: 30_000 },
);

after(
  async () => {
    await Promise.all(users.map((user) => user.close()));
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  },
  { timeout: 30_000 },
);

describe("browser audio probe", { timeout: 60_000 }, () => {
  it("hears each browser's own fake microphone tone through WebRTC, and silence when the track is disabled", async () => {
    const [low, high] = (await launchBrowserUsers([toneWav(dir, 440), toneWav(dir, 1000)])) as [
      BrowserUser,
      BrowserUser,
    ];
    users.push(low, high);
    for (const [user, hz] of [
      [low, 440],
      [high, 1000],
    ] as const) {
      await user.page.goto(url);
      await user.page.evaluate(() => (globalThis as unknown as { ready: Promise<void> }).ready);
      const audio = await receivedAudio(user.page, 1);
      assert.ok(Math.abs(audio.dominantHz - hz) < 20, `expected ~${hz} Hz, measured ${audio.dominantHz}`);
      assert.ok(audio.rms > 0.05, `rms ${audio.rms}`);
      console.log(`probe ${hz}: rms ${audio.rms.toFixed(3)} dominant ${audio.dominantHz.toFixed(1)} Hz`);
    }
    await low.page.evaluate(() => {
      const { mic } = globalThis as unknown as { mic: { getAudioTracks(): { enabled: boolean }[] } };
      for (const track of mic.getAudioTracks()) track.enabled = false;
    });
    const quiet = await waitForReceivedAudio(low.page, (audio) => audio.rms < 0.01, "silence");
    console.log(`probe muted: rms ${quiet.rms.toFixed(4)}`);
    assert.ok(quiet.rms < 0.01, `rms ${quiet.rms} while the track is disabled`);
  });
});
