import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app/app.js";
import { SoftphoneStore } from "./state/store.js";
import "./styles.css";

const store = new SoftphoneStore();
const root = document.getElementById("root");
if (!root) throw new Error("No #root element in index.html.");

createRoot(root).render(
  <StrictMode>
    <App store={store} />
  </StrictMode>,
);
