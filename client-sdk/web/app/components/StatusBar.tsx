// The connection line under the user's name: connected (over which
// transport), reconnecting or disconnected, and the last problem to report.

import { store } from "../state.js";

/** Connection state and banner. */
export function StatusBar() {
  const { connState, transport, banner } = store;
  const label =
    connState === "online"
      ? `Connected · ${transport === "websocket" ? "WebSocket" : "WebTransport"}`
      : connState === "closed"
        ? "Disconnected"
        : "Reconnecting…";
  return (
    <div id="status" class="status" role="status" data-state={connState} data-transport={transport}>
      <span>{label}</span>
      {banner && <div class="banner">{banner}</div>}
    </div>
  );
}
