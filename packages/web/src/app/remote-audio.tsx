import { useEffect, useRef } from "react";
import { canChooseSpeaker, setSpeaker } from "../media/devices.js";
import { useSoftphone } from "../state/store-context.js";

/**
 * Plays one receive slot of a call: the server's audio track, attached as `srcObject`. A 1:1 call
 * uses slot 0; in a conference each slot carries one other participant (the loudest, when more
 * talk than there are slots), and the browser mixes the elements. Mounted for the whole call so
 * the element never restarts; volume, mute and output device follow the in-call controls. The
 * call in front carries `data-testid="remote-audio"` (slot 0), `remote-audio-2`, `remote-audio-3`.
 */
export function RemoteAudio({
  stream,
  main,
  slot,
  active,
}: {
  stream: MediaStream | undefined;
  main: boolean;
  slot: number;
  active: boolean;
}) {
  const state = useSoftphone();
  const ref = useRef<HTMLAudioElement>(null);
  const { speakerVolume, speakerDeviceId } = state.prefs;
  const muted = state.speakerMuted;

  useEffect(() => {
    const audio = ref.current;
    if (!audio) return;
    if (audio.srcObject !== (stream ?? null)) audio.srcObject = stream ?? null;
    // Retry when the call is answered: that click lifts the browser's autoplay block.
    if (stream && active) void audio.play().catch(() => {});
  }, [stream, active]);

  useEffect(() => {
    const audio = ref.current;
    if (!audio) return;
    audio.volume = speakerVolume;
    audio.muted = muted;
  }, [speakerVolume, muted]);

  useEffect(() => {
    const audio = ref.current;
    if (audio && canChooseSpeaker()) void setSpeaker(audio, speakerDeviceId).catch(() => {});
  }, [speakerDeviceId]);

  const testId = !main ? "remote-audio-other" : slot === 0 ? "remote-audio" : `remote-audio-${slot + 1}`;
  // biome-ignore lint/a11y/useMediaCaption: live call audio has no captions
  return <audio ref={ref} autoPlay data-testid={testId} />;
}
