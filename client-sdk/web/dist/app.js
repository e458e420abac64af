// Placeholder: the web app is not built. It only shows what /config.json says.
const status = document.getElementById("status");
fetch("/config.json")
  .then((r) => r.json())
  .then((c) => {
    status.textContent = `server ${c.version}: WebTransport ${c.webtransport_url}, WebSocket ${c.websocket_url}`;
  })
  .catch((e) => {
    status.textContent = `cannot read /config.json: ${e}`;
  });
