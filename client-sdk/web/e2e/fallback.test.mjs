// The WebSocket fallback: in a browser without WebTransport (removed before
// the app loads) and in one whose WebTransport cannot reach the server, the
// app connects over the server's WebSocket endpoint and the same conversation
// test passes. Also: the phone-sized layout, with the screenshot the README shows.
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { artifactPath, BrowserUser, Chatd, NO_WEBTRANSPORT, REPO, until } from "./harness.mjs";

let chatd;
const users = [];

before(async () => {
  chatd = await new Chatd().start();
});

after(async () => {
  for (const u of users) await u.close();
  await chatd?.dispose();
});

test("without WebTransport the app falls back to WebSocket and chats both ways", { timeout: 120_000 }, async () => {
  const gina = await BrowserUser.open("gina", { initScript: NO_WEBTRANSPORT });
  const hank = await BrowserUser.open("hank", { initScript: NO_WEBTRANSPORT });
  users.push(gina, hank);
  await gina.signIn(chatd, chatd.token("gina", "advocate", "Gina"));
  await hank.signIn(chatd, chatd.token("hank", "client", "Hank"));
  assert.equal(await gina.transport(), "websocket");
  assert.equal(await hank.transport(), "websocket");
  assert.equal(await gina.page.evaluate(() => typeof globalThis.WebTransport), "undefined");

  await gina.createPrivate("hank");
  await gina.send("Over WebSocket: **works**");
  const item = hank.page.locator('.conv[data-title="Gina"]');
  await item.locator(".badge", { hasText: "1" }).waitFor();
  await item.click();
  await hank.waitForMessage("Over WebSocket: works");
  await until(async () => (await gina.page.locator('.msg.mine[data-mark="read"]').count()) === 1, "read mark");
  // Hank read Gina's private conversation: now she may see that he is online.
  await gina.page.locator('#chat-header .dot.online[data-presence="hank"]').waitFor();
  await hank.page.type("#composer-input", "typing over websocket");
  await gina.page.locator("#typing", { hasText: "Hank is typing…" }).waitFor();
  await hank.page.press("#composer-input", "Enter");
  await gina.waitForMessage("typing over websocket");
  assert.deepEqual(await gina.messages(), ["Over WebSocket: works", "typing over websocket"]);
  await hank.waitForMessage("typing over websocket"); // his own copy, once acknowledged
  assert.deepEqual(await hank.messages(), await gina.messages());
});

test("when WebTransport cannot reach the server, the app falls back to WebSocket", { timeout: 120_000 }, async () => {
  // The browser has WebTransport, but the UDP port it is told to use is
  // blocked (nothing answers), as on networks that drop UDP.
  const ivy = await BrowserUser.open("ivy");
  users.push(ivy);
  await ivy.page.route("**/config.json", async (route) => {
    const res = await route.fetch();
    const cfg = await res.json();
    cfg.webtransport_url = "https://localhost:9/chat";
    await route.fulfill({ response: res, json: cfg });
  });
  await ivy.signIn(chatd, chatd.token("ivy", "advocate", "Ivy"));
  assert.equal(await ivy.transport(), "websocket");
  await ivy.createPrivate("gina");
  await ivy.send("fallback after a blocked WebTransport");
  await ivy.page.locator('.msg.mine[data-mark="delivered"], .msg.mine[data-mark="read"], .msg.mine[data-mark="sent"]').first().waitFor();
});

test("phone-sized layout: list, then conversation with a back button", { timeout: 120_000 }, async () => {
  const phone = { width: 390, height: 780 };
  const jo = await BrowserUser.open("jo", { viewport: phone });
  const kim = await BrowserUser.open("kim");
  users.push(jo, kim);
  await jo.signIn(chatd, chatd.token("jo", "advocate", "Jo Advocate"));
  await kim.signIn(chatd, chatd.token("kim", "client", "Kim Client"));
  await kim.createPrivate("jo");
  await kim.send("Hi Jo, I got the **court notice** today.");
  await kim.send("The hearing is on the 14th. Do I need to bring:\n- the lease\n- the payment receipts");
  const item = jo.page.locator('.conv[data-title="Kim Client"]');
  await item.locator(".badge", { hasText: "2" }).waitFor();
  // On a phone the list fills the screen and the chat is hidden.
  assert.equal(await jo.page.locator("#chat").isVisible(), false);
  await jo.page.screenshot({ path: artifactPath("phone-list.png") });
  await item.click();
  await jo.waitForMessage("payment receipts");
  assert.equal(await jo.page.locator(".sidebar").isVisible(), false);
  await jo.send("Yes, both. See [the court's checklist](https://www.uscourts.gov/forms) and bring `ID`.");
  await kim.page.type("#composer-input", "Thank you");
  await jo.page.locator("#typing", { hasText: "Kim Client is typing…" }).waitFor();
  await until(async () => (await jo.page.locator('.msg.mine[data-mark="read"]').count()) === 1, "read mark");
  const width = await jo.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= phone.width, `no horizontal scrolling (${width}px)`);
  const shot = artifactPath("web-app-phone.png");
  await jo.page.screenshot({ path: shot });
  if (process.env.UPDATE_DOCS_SCREENSHOT === "1") copyFileSync(shot, join(REPO, "docs/web-app.png"));
  await jo.page.click(".back");
  await jo.page.locator(".sidebar").waitFor();
});
