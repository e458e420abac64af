// The installable app (issue 15): the manifest is served and complete, the
// service worker controls the page, and with chatd stopped a reload opens
// the app from the worker's cache with the saved conversation and messages,
// marked offline and read-only; chatd back, the banner goes and live
// messages flow; signing out deletes the saved history.
import assert from "node:assert/strict";
import { test } from "node:test";
import { axeViolations, BrowserUser, chatdForFile, savedView, until } from "./harness.mjs";

const ctx = chatdForFile();

test("the manifest is served and names the app, its icons and how it opens", async () => {
  const { chatd } = ctx;
  const r = await fetch(`${chatd.webUrl}/manifest.webmanifest`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "application/manifest+json");
  const m = await r.json();
  assert.equal(m.short_name, "chatd");
  assert.match(m.name, /chatd/);
  assert.equal(m.start_url, "/");
  assert.equal(m.display, "standalone");
  assert.equal(m.theme_color, "#1f5fbf");
  const sizes = m.icons.map((i) => `${i.sizes} ${i.purpose}`);
  assert.deepEqual(sizes, ["192x192 any", "512x512 any", "512x512 maskable"]);
  for (const icon of m.icons) {
    const png = await fetch(`${chatd.webUrl}${icon.src}`);
    assert.equal(png.headers.get("content-type"), "image/png");
    const bytes = Buffer.from(await png.arrayBuffer());
    const side = Number(icon.sizes.split("x")[0]);
    assert.equal(bytes.readUInt32BE(16), side, `${icon.src} is ${side} px wide`);
  }
  const sw = await fetch(`${chatd.webUrl}/sw.js`);
  assert.equal(sw.headers.get("content-type"), "text/javascript; charset=utf-8");
  const csp = sw.headers.get("content-security-policy");
  assert.match(csp, /manifest-src 'self'/);
  assert.match(csp, /worker-src 'self'/);
});

test("offline, a reload shows the saved conversation read-only; back online, live messages flow", { timeout: 180_000 }, async () => {
  const { chatd } = ctx;
  const ann = await BrowserUser.open("ann-offline");
  const ben = await BrowserUser.open("ben-offline");
  ctx.users.push(ann, ben);
  await ann.signIn(chatd, chatd.token("ann", "advocate", "Ann Advocate"));
  await ben.signIn(chatd, chatd.token("ben", "client", "Ben Client"));
  const manifest = await ann.page.locator('link[rel="manifest"]').getAttribute("href");
  assert.equal(manifest, "/manifest.webmanifest");
  // The worker installs and takes control of the page.
  await ann.page.waitForFunction(() => navigator.serviceWorker.controller?.scriptURL.endsWith("/sw.js"), null, { timeout: 20_000 });

  await ann.createPrivate("ben");
  await ann.send("The hearing moved to Thursday");
  await ann.waitForMessage("The hearing moved to Thursday");
  await ben.page.locator(".conv").first().click();
  await ben.send("Understood, I will bring the documents");
  await ann.waitForMessage("Understood, I will bring the documents");
  // Saved a second after the change: both messages, and Ben's name (the
  // conversation's title) once the directory answered. (Read with `until`:
  // a `waitForFunction` predicate returning a promise counts as true at once.)
  await until(async () => {
    const s = await savedView(ann.page, "ann");
    return s && s.messages.some((n) => n >= 2) && s.names.includes("Ben Client");
  }, "ann's history saved with both messages and Ben's name");

  await chatd.stop();
  await ann.page.reload();
  const banner = ann.page.locator("#offline-banner[role=status]", { hasText: "Offline — showing saved messages" });
  await banner.waitFor({ timeout: 20_000 });
  await ann.page.locator('.conv[data-title="Ben Client"]').waitFor();
  await ann.open("Ben Client");
  assert.deepEqual(await ann.messages(), ["The hearing moved to Thursday", "Understood, I will bring the documents"]);
  assert.equal(await ann.page.locator("#composer-input").count(), 0, "no composer while offline");
  await ann.page.locator("#offline-note").waitFor();
  assert.deepEqual(await axeViolations(ann.page), [], "the offline screen is accessible");

  // The server comes back on the same ports and data: the banner goes and live messages flow.
  await chatd.start();
  await ann.page.locator('#status[data-state="online"]').waitFor({ timeout: 60_000 });
  await banner.waitFor({ state: "detached" });
  await ann.page.locator("#composer-input").waitFor();
  await ben.page.locator('#status[data-state="online"]').waitFor({ timeout: 60_000 });
  await ben.send("Back online: see you Thursday");
  await ann.waitForMessage("Back online: see you Thursday", 30_000);
  await ann.send("Confirmed");
  await ben.waitForMessage("Confirmed", 30_000);

  // Signing out deletes the saved history: offline, nothing of it shows.
  await ann.page.click("#sign-out");
  await ann.page.locator("#token").or(ann.page.locator(".signin")).first().waitFor();
  await until(async () => (await savedView(ann.page, "ann")) === undefined, "no saved history after sign-out");
  await chatd.stop();
  await ann.page.reload();
  await ann.page.locator(".signin").waitFor({ timeout: 20_000 });
  assert.equal(await ann.page.locator(".msg").count(), 0);
  assert.equal(await ann.page.locator("#offline-banner").count(), 0);
  await chatd.start();
});
