// First: configures what the other modules need under the server's strict CSP.
import "./strict-csp.js";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app/app.js";
import { SoftphoneStore } from "./state/store.js";
import "./styles.css";

/** /admin is the operator console: same sign-in and SDK, no softphone (no microphone, no ringing). */
const operatorConsole = /^\/admin\/?$/.test(window.location.pathname);
const store = new SoftphoneStore({ softphone: !operatorConsole });
const root = document.getElementById("root");
if (!root) throw new Error("No #root element in index.html.");

createRoot(root).render(
  <StrictMode>
    <App store={store} operatorConsole={operatorConsole} />
  </StrictMode>,
);
