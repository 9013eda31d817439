import { useEffect, useRef } from "react";
import { canChooseSpeaker, setSpeaker } from "../media/devices.js";
import { useSoftphone } from "../state/store-context.js";

/**
 * Plays one call's correspondent: the server's audio track, attached as `srcObject`. Mounted for
 * the whole call so the element never restarts; volume, mute and output device follow the
 * in-call controls. The call in front carries `data-testid="remote-audio"`.
 */
export function RemoteAudio({
  stream,
  main,
  active,
}: {
  stream: MediaStream | undefined;
  main: boolean;
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

  // biome-ignore lint/a11y/useMediaCaption: live call audio has no captions
  return <audio ref={ref} autoPlay data-testid={main ? "remote-audio" : "remote-audio-other"} />;
}
