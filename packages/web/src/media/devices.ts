/** Audio input and output devices, for the microphone and speaker pickers. */

export interface AudioDevice {
  deviceId: string;
  label: string;
}

export interface AudioDevices {
  inputs: AudioDevice[];
  outputs: AudioDevice[];
}

export async function listAudioDevices(): Promise<AudioDevices> {
  if (!navigator.mediaDevices?.enumerateDevices) return { inputs: [], outputs: [] };
  const all = await navigator.mediaDevices.enumerateDevices();
  const pick = (kind: MediaDeviceKind): AudioDevice[] =>
    all
      .filter(
        (d) => d.kind === kind && d.deviceId !== "" && d.deviceId !== "default" && d.deviceId !== "communications",
      )
      .map((d) => ({ deviceId: d.deviceId, label: d.label }));
  return { inputs: pick("audioinput"), outputs: pick("audiooutput") };
}

export function onDevicesChanged(listener: () => void): () => void {
  const devices = navigator.mediaDevices;
  if (!devices?.addEventListener) return () => {};
  devices.addEventListener("devicechange", listener);
  return () => devices.removeEventListener("devicechange", listener);
}

/** Whether audio elements can be routed to a chosen output (`HTMLMediaElement.setSinkId`). */
export function canChooseSpeaker(): boolean {
  return typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
}

export async function setSpeaker(element: HTMLMediaElement, deviceId: string): Promise<void> {
  const sinkable = element as HTMLMediaElement & { setSinkId?: (id: string) => Promise<void> };
  if (sinkable.setSinkId) await sinkable.setSinkId(deviceId);
}
