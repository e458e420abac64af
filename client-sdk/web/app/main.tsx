// The chat web app: served by `chatd serve`, talks to the server through the
// TypeScript SDK (WebTransport, or WebSocket as the fallback). Preact
// components (components/) render one store (state.ts); actions.ts and
// events.ts change it. Everything users type is rendered as text nodes (see
// markdown.ts); no HTML sink is used anywhere (test/markdown.test.ts).

import { render } from "preact";
import { Templates } from "../src/sdk/index.js";
import { markReadIfVisible } from "./actions.js";
import { App } from "./components/App.js";
import { registerServiceWorker } from "./pwa/register.js";
import { finishProviderSignIn, returningFromProvider } from "./oidc-signin.js";
import { readTokenFromFragment, savedToken, start } from "./session.js";
import { changed, currentView, store } from "./state.js";

document.addEventListener("visibilitychange", () => {
  const v = currentView();
  if (!v) return;
  markReadIfVisible(v);
  changed();
});

const back = returningFromProvider();
const token = back ? undefined : (readTokenFromFragment() ?? savedToken());
if (token || back) store.screen = { kind: "connecting" };
const root = document.getElementById("app") as HTMLElement;
root.textContent = "";
render(<App />, root);
if (back) void finishProviderSignIn();
else if (token) void start(token);
registerServiceWorker();

// For tests and debugging in the console: the app's state, read-only.
(globalThis as { chatApp?: unknown }).chatApp = {
  get client() {
    return store.client;
  },
  get conversations() {
    return store.convs;
  },
  get current() {
    return store.current;
  },
  /** The signed-in user's template calls (tests create templates through it). */
  get templates() {
    return store.client ? new Templates(store.client) : undefined;
  },
};
