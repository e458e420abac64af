// Reloading never signs anyone out: on a chatd that allows one user 20 new
// connections a minute, a user who reloads past that is refused
// (CONNECTION_RATE_LIMITED). The app keeps the token, says why and when it
// tries again, and connects by itself once the limit lets it, with no new
// sign-in link. Only a refusal of the token itself goes back to sign-in.
// Over WebTransport and over the WebSocket fallback.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BrowserUser, chatdForFile, NO_WEBTRANSPORT } from "./harness.mjs";

const ctx = chatdForFile({ CHAT_LIMITS__CONNECTIONS_PER_MINUTE_PER_USER: "20" });

/** A browser without WebTransport for the fallback's runs. */
const opts = (transport) => (transport === "websocket" ? { initScript: NO_WEBTRANSPORT } : {});

for (const transport of ["webtransport", "websocket"]) {
  test(`a rate-limited reload keeps the token and reconnects by itself (${transport})`, { timeout: 120_000 }, async () => {
    const u = await BrowserUser.open(`reloader-${transport}`, opts(transport));
    ctx.users.push(u);
    await u.signIn(ctx.chatd, ctx.chatd.token(`reloader-${transport}`, "advocate", "Reloading Rita"));
    assert.equal(await u.transport(), transport);
    const problem = u.page.locator(".splash-problem");
    let refused = false;
    for (let i = 0; i < 40 && !refused; i++) {
      await u.page.reload();
      await u.page.locator('#status[data-state="online"], .splash-problem').first().waitFor({ timeout: 20_000 });
      refused = await problem.isVisible();
    }
    assert.ok(refused, "the per-user limit was reached");
    assert.match(await problem.textContent(), /CONNECTION_RATE_LIMITED.*trying again in \d+ s/);
    const kept = await u.page.evaluate(() => sessionStorage.getItem("chatd.token") !== null);
    assert.ok(kept, "the token is kept");
    assert.equal(await u.page.locator("form.signin").count(), 0, "not sent back to sign in");
    // The limit lets one more in every 3 s: the app gets there on its own.
    await u.page.locator('#status[data-state="online"]').waitFor({ timeout: 45_000 });
  });

  test(`a refused token goes back to sign-in and is forgotten (${transport})`, { timeout: 60_000 }, async () => {
    const u = await BrowserUser.open(`forged-${transport}`, opts(transport));
    ctx.users.push(u);
    await u.page.goto(ctx.chatd.appUrl("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"));
    await u.page.getByText(/Sign-in failed: .*UNAUTHENTICATED/).waitFor({ timeout: 20_000 });
    const kept = await u.page.evaluate(() => sessionStorage.getItem("chatd.token") !== null);
    assert.ok(!kept, "a refused token is not kept");
  });
}
