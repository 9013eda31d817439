import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev -w @parley/web` serves the UI with hot reload and forwards the signaling socket to a
// Parley server on localhost:8080 (`npm start`), so the default server address (this page's host
// + /ws) works in development too.
const signaling = { "/ws": { target: "ws://localhost:8080", ws: true } };

export default defineConfig({
  plugins: [react()],
  server: { proxy: signaling },
  preview: { proxy: signaling },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
});
