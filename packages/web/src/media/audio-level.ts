import { audioContext } from "../audio/audio-context.js";

/**
 * Reports whether someone is speaking on `stream` (its level crosses a threshold), for the
 * "who is speaking" indicator. Analyses through the shared AudioContext without playing anything.
 */
export function watchSpeaking(stream: MediaStream, onChange: (speaking: boolean) => void): () => void {
  const ctx = audioContext();
  if (!ctx || stream.getAudioTracks().length === 0) return () => {};
  let source: MediaStreamAudioSourceNode;
  try {
    source = ctx.createMediaStreamSource(stream);
  } catch {
    return () => {};
  }
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let speaking = false;
  let quietSince = 0;
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    const now = Date.now();
    if (rms > 0.02) {
      quietSince = 0;
      if (!speaking) {
        speaking = true;
        onChange(true);
      }
    } else if (speaking) {
      if (quietSince === 0) quietSince = now;
      else if (now - quietSince > 400) {
        speaking = false;
        onChange(false);
      }
    }
  }, 100);
  return () => {
    clearInterval(timer);
    source.disconnect();
    analyser.disconnect();
  };
}
