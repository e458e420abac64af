//! The app-wide notices above the conversation list: offline (the saved
//! history shows, read-only, or the connection dropped) and a new version
//! of the app ready to load.

import { applyUpdate } from "../pwa/register.js";
import { store } from "../state.js";

/** The offline banner and the update offer, when they apply. */
export function AppNotices() {
  const offline = store.offline || (store.client !== undefined && store.connState !== "online");
  if (!offline && !store.updateReady) return null;
  return (
    <div class="notices">
      {offline && (
        <div id="offline-banner" class="offline-banner" role="status">
          {store.offline ? "Offline — showing saved messages" : "Offline — showing the messages loaded so far"}
        </div>
      )}
      {store.updateReady && (
        <div id="update-ready" class="update-ready" role="status">
          A new version of the app is ready.{" "}
          <button type="button" id="update-reload" onClick={applyUpdate}>
            Reload to update
          </button>
        </div>
      )}
    </div>
  );
}
