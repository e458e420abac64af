// The connection line under the user's name: connected (over which
// transport), reconnecting or disconnected, and the last problem to report.

import { store } from "../state.js";

/** Connection state and banner. */
export function StatusBar() {
  const { connState, transport, banner } = store;
  // Whether this device's end-to-end encryption runs (tests wait for "ready").
  const e2e = store.e2eProblem ? "unavailable" : store.e2e ? "ready" : "starting";
  const label =
    connState === "online"
      ? `Connected · ${transport === "websocket" ? "WebSocket" : "WebTransport"}`
      : connState === "closed"
        ? "Disconnected"
        : "Reconnecting…";
  return (
    <div id="status" class="status" role="status" data-state={connState} data-transport={transport} data-e2e={e2e}>
      <span>{label}</span>
      {banner && <div class="banner">{banner}</div>}
    </div>
  );
}
