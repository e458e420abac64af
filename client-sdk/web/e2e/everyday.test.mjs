// The everyday pieces (issue 15, item 7): the unread count in the tab title,
// date separators, "added / left / role" lines, Manage (roles, remove,
// archive, leave), background-tab notifications behind a setting, the
// support queue's requester and time, and case numbers shown in full.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BrowserUser, chatdForFile, until } from "./harness.mjs";

const ctx = chatdForFile();

/**
 * Records each notification the page shows (the browser's own Notification
 * does the showing), and lets the test put the tab in the background:
 * headless Chromium keeps every tab visible whatever is in front, so
 * `setHidden` stands in for the user switching tabs (document.visibilityState
 * and the visibilitychange event, as a tab switch changes them).
 */
const RECORD_NOTIFICATIONS = () => {
  let hidden = false;
  Object.defineProperty(Document.prototype, "visibilityState", { get: () => (hidden ? "hidden" : "visible"), configurable: true });
  Object.defineProperty(Document.prototype, "hidden", { get: () => hidden, configurable: true });
  globalThis.setHidden = (h) => {
    hidden = h;
    document.dispatchEvent(new Event("visibilitychange"));
  };
  const Real = globalThis.Notification;
  if (!Real) return;
  globalThis.shownNotifications = [];
  class Recorded extends Real {
    constructor(title, opts) {
      super(title, opts);
      globalThis.shownNotifications.push({ title, body: opts?.body ?? "" });
    }
  }
  Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
  Recorded.requestPermission = (...a) => Real.requestPermission(...a);
  globalThis.Notification = Recorded;
};

test("tab title, date separators, membership lines and the Manage dialog", { timeout: 180_000 }, async () => {
  const { chatd } = ctx;
  const ann = await BrowserUser.open("ann");
  const ben = await BrowserUser.open("ben");
  const cat = await BrowserUser.open("cat");
  ctx.users.push(ann, ben, cat);
  await ann.signIn(chatd, chatd.token("ann", "advocate", "Ann Advocate"));
  await ben.signIn(chatd, chatd.token("ben", "client", "Ben Client"));
  await cat.signIn(chatd, chatd.token("cat", "client", "Cat Client"));
  assert.equal(await ben.page.title(), "chatd");

  // Unread count in the title while the conversation is not open.
  await ann.createPrivate("ben");
  await ann.send("First note");
  await ann.send("Second note");
  await until(async () => (await ben.page.title()) === "(2) chatd", "ben's title to count 2 unread");
  await ben.open("Ann Advocate");
  await until(async () => (await ben.page.title()) === "chatd", "the title to clear once read");
  // Today's messages sit under a "Today" separator, once.
  await ben.waitForMessage("Second note");
  assert.deepEqual(await ben.page.$$eval("#messages .day-separator", (els) => els.map((e) => e.textContent)), ["Today"]);

  // A group: Ann adds Cat, makes Ben an admin; everyone sees the lines.
  await ann.page.click("#new-conv");
  await ann.page.selectOption("#new-kind", "group");
  await ann.page.fill("#new-title", "Lease review");
  await ann.page.fill("#new-members", "ben");
  await ann.page.click("#create");
  await ann.page.locator("#chat-title", { hasText: "Lease review" }).waitFor();
  await ann.send("Welcome to the lease review");
  await ben.open("Lease review");
  await ann.page.getByRole("button", { name: "Add", exact: true }).click();
  await ann.page.fill("#add-members", "cat");
  await ann.page.getByRole("button", { name: "Add", exact: true }).last().click();
  await ben.page.locator(".note", { hasText: "Ann Advocate added Cat Client" }).waitFor();
  await ann.page.locator(".note", { hasText: "Ann Advocate added Cat Client" }).waitFor();

  await ann.page.click("#manage-button");
  const manage = ann.page.getByRole("dialog", { name: "Manage “Lease review”" });
  await manage.waitFor();
  await manage.getByLabel("Role of Ben Client").selectOption({ label: "Admin" });
  await ben.page.locator(".note", { hasText: "Ann Advocate made Ben Client an admin" }).waitFor();
  // Ben, now an admin, is offered Add.
  await ben.page.getByRole("button", { name: "Add", exact: true }).waitFor();
  // Remove, then archive.
  await manage.getByRole("button", { name: "Remove Cat Client" }).click();
  await ben.page.locator(".note", { hasText: "Ann Advocate removed Cat Client" }).waitFor();
  await cat.page.locator('.conv[data-title="Lease review"]').waitFor({ state: "detached" });
  await manage.getByRole("button", { name: "Archive" }).click();
  await manage.getByRole("button", { name: "Unarchive" }).waitFor();
  await ann.page.locator("#chat-header", { hasText: "archived" }).waitFor();
  await manage.getByRole("button", { name: "Unarchive" }).click();
  await manage.getByRole("button", { name: "Archive" }).waitFor();
  await ann.page.keyboard.press("Escape");
  await manage.waitFor({ state: "detached" });

  // Ben leaves: his list drops it, Ann sees the line.
  await ben.page.click("#manage-button");
  const benManage = ben.page.getByRole("dialog", { name: "Manage “Lease review”" });
  await benManage.getByRole("button", { name: "Leave…" }).click();
  await benManage.getByRole("button", { name: "Leave for good" }).click();
  await ben.page.locator('.conv[data-title="Lease review"]').waitFor({ state: "detached" });
  await ann.page.locator(".note", { hasText: "Ben Client left" }).waitFor();
  // The lines sit after the message they followed.
  const order = await ann.page.$$eval("#messages > *", (els) => els.map((e) => e.textContent));
  const welcome = order.findIndex((t) => t.includes("Welcome to the lease review"));
  const left = order.findIndex((t) => t === "Ben Client left");
  assert.ok(welcome >= 0 && left > welcome, `lines after the message: ${JSON.stringify(order)}`);
});

test("a background tab notifies when the setting is on, and only then", { timeout: 120_000 }, async () => {
  const { chatd } = ctx;
  const nia = await BrowserUser.open("nia", { initScript: RECORD_NOTIFICATIONS });
  const ole = await BrowserUser.open("ole");
  ctx.users.push(nia, ole);
  await nia.context.grantPermissions(["notifications"], { origin: chatd.webUrl });
  await nia.signIn(chatd, chatd.token("nia", "advocate", "Nia"));
  await ole.signIn(chatd, chatd.token("ole", "client", "Ole"));
  await ole.createPrivate("nia");
  const toggle = nia.page.getByLabel("Notify me of messages while this tab is in the background");
  assert.equal(await toggle.isChecked(), false, "off by default");

  // Another tab comes to the front: Nia's chat is in the background.
  await nia.page.evaluate(() => globalThis.setHidden(true));
  await ole.send("Setting is off");
  await nia.page.locator('.conv[data-title="Ole"] .conv-last', { hasText: "Setting is off" }).waitFor();
  assert.deepEqual(await nia.page.evaluate(() => globalThis.shownNotifications), []);

  await nia.page.evaluate(() => globalThis.setHidden(false));
  await toggle.check();
  await until(async () => (await nia.page.evaluate(() => localStorage.getItem("chatd.notify"))) === "on", "the setting to be kept");
  await nia.page.evaluate(() => globalThis.setHidden(true));
  await ole.send("Please call me");
  await until(async () => (await nia.page.evaluate(() => globalThis.shownNotifications)).length === 1, "one notification");
  assert.deepEqual(await nia.page.evaluate(() => globalThis.shownNotifications), [{ title: "Ole · Ole", body: "Please call me" }]);
  // In the foreground: no notification (the live region and the list say it).
  await nia.page.evaluate(() => globalThis.setHidden(false));
  await ole.send("Seen in the foreground");
  await nia.page.locator('.conv[data-title="Ole"] .conv-last', { hasText: "Seen in the foreground" }).waitFor();
  assert.equal((await nia.page.evaluate(() => globalThis.shownNotifications)).length, 1);
});

test("the support queue says who asked and when; a case number shows in full on a phone", { timeout: 120_000 }, async () => {
  const { chatd } = ctx;
  const sue = await BrowserUser.open("sue");
  const tom = await BrowserUser.open("tom", { viewport: { width: 390, height: 780 } });
  ctx.users.push(sue, tom);
  await tom.signIn(chatd, chatd.token("tom", "client", "Tom Client"));
  await tom.page.click("#new-conv");
  await tom.page.selectOption("#new-kind", "support");
  await tom.page.fill("#new-title", "Question about my invoice");
  await tom.page.click("#create");
  await tom.page.locator("#chat-title", { hasText: "Question about my invoice" }).waitFor();
  await sue.signIn(chatd, chatd.token("sue", "admin", "Sue Staff"));
  const item = sue.page.locator(".queue-item", { hasText: "Question about my invoice" });
  await item.waitFor({ timeout: 20_000 });
  const meta = (await item.locator(".queue-meta").textContent()) ?? "";
  assert.match(meta, /^From tom · \d{1,2}:\d{2}/);

  // A case with a long title, listed on a 390 px phone: the number is whole.
  await sue.page.click("#new-conv");
  await sue.page.selectOption("#new-kind", "case");
  await sue.page.fill("#new-case", "2026-CV-004711");
  await sue.page.fill("#new-title", "Estate of the late Mr Bartholomew Fitzgerald-Whitmore and related matters");
  await sue.page.fill("#new-members", "tom");
  await sue.page.click("#create");
  await sue.page.locator("#chat-title", { hasText: "2026-CV-004711" }).waitFor();
  await tom.page.getByRole("button", { name: "Back to conversations" }).click();
  const num = tom.page.locator(".conv .conv-case", { hasText: "2026-CV-004711" });
  await num.waitFor();
  const fit = await num.evaluate((el) => ({ text: el.textContent, scroll: el.scrollWidth, client: el.clientWidth, right: el.getBoundingClientRect().right }));
  assert.equal(fit.text, "2026-CV-004711");
  assert.ok(fit.scroll <= fit.client, `the case number is cut off (${fit.scroll} > ${fit.client})`);
  assert.ok(fit.right <= 390, "the case number is on the screen");
});
