/**
 * One shared AudioContext for tones and level meters. Browsers start it suspended until the user
 * interacts with the page, so `unlockOnGesture` resumes it on the first click or key press.
 */
let context: AudioContext | undefined;

export function audioContext(): AudioContext | undefined {
  if (context) return context;
  if (typeof AudioContext === "undefined") return undefined;
  try {
    context = new AudioContext();
  } catch {
    return undefined;
  }
  return context;
}

/** Resumes the context; harmless when it already runs or the browser refuses. */
export function resumeAudio(): void {
  const ctx = audioContext();
  if (ctx && ctx.state === "suspended") void ctx.resume().catch(() => {});
}

export function unlockOnGesture(): () => void {
  const unlock = () => resumeAudio();
  window.addEventListener("pointerdown", unlock, true);
  window.addEventListener("keydown", unlock, true);
  return () => {
    window.removeEventListener("pointerdown", unlock, true);
    window.removeEventListener("keydown", unlock, true);
  };
}
