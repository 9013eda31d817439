import { useI18n } from "../i18n.js";
import { httpsAddress, isInsecureContext } from "../media/secure-context.js";

/**
 * Says that the microphone needs a secure connection, with a link to the server's HTTPS address,
 * when the page was opened over plain HTTP from another machine. Renders nothing otherwise.
 */
export function InsecureContextNotice() {
  const { t } = useI18n();
  if (!isInsecureContext()) return null;
  const https = httpsAddress();
  return (
    <div className="banner banner--warning banner--secure" role="alert" data-testid="insecure-context">
      <p>{t("needsHttps")}</p>
      {https ? (
        <p>
          {t("needsHttpsOpen")}{" "}
          <a href={https} className="banner__link">
            {https}
          </a>
        </p>
      ) : null}
    </div>
  );
}
