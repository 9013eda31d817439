import { useEffect, useMemo, useState } from "react";
import { OperatorApp } from "../admin/operator-app.js";
import { unlockOnGesture } from "../audio/audio-context.js";
import { I18nContext, initialLanguage, type Language, saveLanguage, translate, useI18n } from "../i18n.js";
import type { SoftphoneStore } from "../state/store.js";
import { StoreContext, useSoftphone } from "../state/store-context.js";
import { Announcer } from "./announcer.js";
import { Shell } from "./shell.js";
import { SignInScreen } from "./sign-in-screen.js";

export function App({ store, operatorConsole = false }: { store: SoftphoneStore; operatorConsole?: boolean }) {
  const [language, setLanguageState] = useState<Language>(initialLanguage);
  const i18n = useMemo(
    () => ({
      language,
      setLanguage: (next: Language) => {
        saveLanguage(next);
        setLanguageState(next);
      },
      t: (key: Parameters<typeof translate>[1], vars?: Parameters<typeof translate>[2]) =>
        translate(language, key, vars),
    }),
    [language],
  );

  useEffect(() => {
    document.documentElement.lang = language;
    document.title = translate(language, "appName");
  }, [language]);

  useEffect(() => unlockOnGesture(), []);
  useEffect(() => store.start(), [store]);

  return (
    <I18nContext.Provider value={i18n}>
      <StoreContext.Provider value={store}>
        <Screens operatorConsole={operatorConsole} />
        <Announcer />
      </StoreContext.Provider>
    </I18nContext.Provider>
  );
}

function Screens({ operatorConsole }: { operatorConsole: boolean }) {
  const state = useSoftphone();
  if (state.phase === "signedIn") return operatorConsole ? <OperatorApp /> : <Shell />;
  if (state.phase === "signedOut") return <SignInScreen />;
  return <Splash />;
}

function Splash() {
  const { t } = useI18n();
  return (
    <div className="splash" role="status" aria-label={t("resuming")}>
      <span className="brand__mark brand__mark--large" aria-hidden="true">
        P
      </span>
      <p className="muted">{t("resuming")}</p>
    </div>
  );
}
