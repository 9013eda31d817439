import { useEffect, useId, useState } from "react";
import { useI18n } from "../i18n.js";
import { type AudioDevices, canChooseSpeaker, listAudioDevices, onDevicesChanged } from "../media/devices.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { errorText, Icon, useAction } from "./ui.js";

/** Microphone and speaker controls of the call in progress. */
export function AudioSettings() {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const [devices, setDevices] = useState<AudioDevices>({ inputs: [], outputs: [] });
  const ids = { volume: useId(), mic: useId(), speaker: useId(), sinkHint: useId() };
  const micAction = useAction();
  const sinkSupported = canChooseSpeaker();

  useEffect(() => {
    let live = true;
    const refresh = () => {
      listAudioDevices().then(
        (d) => live && setDevices(d),
        () => {},
      );
    };
    refresh();
    const off = onDevicesChanged(refresh);
    return () => {
      live = false;
      off();
    };
  }, []);

  const volume = Math.round(state.prefs.speakerVolume * 100);

  return (
    <div className="audio-settings">
      <div className="audio-settings__toggles">
        <button
          type="button"
          className={`btn btn--toggle${state.speaking.local && !state.micMuted ? " is-speaking" : ""}`}
          aria-pressed={state.micMuted}
          onClick={() => store.calls.toggleMicrophone()}
        >
          <Icon name="mic" />
          {t("muteMic")}
        </button>
        <button
          type="button"
          className="btn btn--toggle"
          aria-pressed={state.speakerMuted}
          onClick={() => store.toggleSpeaker()}
        >
          <Icon name="speaker" />
          {t("muteSpeaker")}
        </button>
      </div>
      <div className="audio-settings__fields">
        <div className="field field--compact">
          <label htmlFor={ids.volume}>{t("speakerVolume")}</label>
          <input
            id={ids.volume}
            type="range"
            min={0}
            max={100}
            step={5}
            value={state.speakerMuted ? 0 : volume}
            aria-valuetext={`${state.speakerMuted ? 0 : volume} %`}
            onChange={(e) => store.setSpeakerVolume(Number(e.target.value) / 100)}
          />
        </div>
        <div className="field field--compact">
          <label htmlFor={ids.mic}>{t("microphone")}</label>
          <select
            id={ids.mic}
            value={devices.inputs.some((d) => d.deviceId === state.prefs.micDeviceId) ? state.prefs.micDeviceId : ""}
            disabled={micAction.pending}
            onChange={(e) => {
              const id = e.target.value;
              void micAction.run(() => store.calls.setMicrophoneDevice(id));
            }}
          >
            <option value="">{t("defaultDevice")}</option>
            {devices.inputs.map((d, i) => (
              <option key={d.deviceId} value={d.deviceId}>
                {d.label || t("deviceN", { n: i + 1 })}
              </option>
            ))}
          </select>
        </div>
        <div className="field field--compact">
          <label htmlFor={ids.speaker}>{t("speaker")}</label>
          <select
            id={ids.speaker}
            value={
              devices.outputs.some((d) => d.deviceId === state.prefs.speakerDeviceId) ? state.prefs.speakerDeviceId : ""
            }
            disabled={!sinkSupported}
            aria-describedby={sinkSupported ? undefined : ids.sinkHint}
            onChange={(e) => store.setSpeakerDevice(e.target.value)}
          >
            <option value="">{t("defaultDevice")}</option>
            {devices.outputs.map((d, i) => (
              <option key={d.deviceId} value={d.deviceId}>
                {d.label || t("deviceN", { n: i + 1 })}
              </option>
            ))}
          </select>
          {sinkSupported ? null : (
            <p className="hint" id={ids.sinkHint}>
              {t("sinkUnsupported")}
            </p>
          )}
        </div>
      </div>
      {micAction.error !== undefined ? (
        <p className="form-message form-message--error" role="alert">
          {errorText(t, micAction.error)}
        </p>
      ) : null}
    </div>
  );
}
