// The Compliance screen (issue 16), system admins only: an advocate has no
// Compliance button; an admin sets a legal hold on a case, and erasing the
// client then keeps his message in that case (the result names the hold)
// while it is in force; a bad target is refused with the server's reason;
// once the hold is released (after a confirmation) the erasure finishes:
// the advocate sees the client's message become a deleted tombstone, live;
// then the admin erases the whole conversation by the id its header shows,
// and the advocate sees it archived and emptied, live (a second erasure
// finds nothing).
// axe finds no serious or critical violation on it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { axeViolations, BrowserUser, chatdForFile, until } from "./harness.mjs";

// Encryption at rest on, so the conversation's erasure destroys a key.
const ctx = chatdForFile({ CHAT_ENCRYPTION__MASTER_KEY: "5a".repeat(32) });

test("an admin holds a case, erases a user (the hold keeps his messages), then releases it and the erasure finishes", { timeout: 180_000 }, async () => {
  const { chatd, users } = ctx;
  const ann = await BrowserUser.open("ann-gdpr");
  const ben = await BrowserUser.open("ben-gdpr");
  const ada = await BrowserUser.open("ada-gdpr");
  users.push(ann, ben, ada);
  await ann.signIn(chatd, chatd.token("ann-gdpr", "advocate", "Ann Advocate"));
  await ben.signIn(chatd, chatd.token("ben-gdpr", "client", "Ben Client"));
  await ada.signIn(chatd, chatd.token("ada-gdpr", "admin", "Ada Admin"));
  assert.equal(await ann.page.locator("#compliance-button").count(), 0, "only admins are offered the screen");

  // A case conversation where Ben writes.
  await ann.page.click("#new-conv");
  await ann.page.selectOption("#new-kind", "case");
  await ann.page.fill("#new-case", "CASE-HOLD-7");
  await ann.page.fill("#new-title", "Tenancy");
  await ann.page.fill("#new-members", "ben-gdpr");
  await ann.page.click("#create");
  await ann.page.locator("#chat-title", { hasText: "CASE-HOLD-7" }).waitFor();
  await ben.page.locator(".conv").first().click();
  await ben.send("My account number is 12345678");
  await ann.waitForMessage("My account number is 12345678");

  await ada.page.click("#compliance-button");
  const screen = ada.page.getByRole("dialog", { name: "Compliance" });
  await screen.waitFor();
  await until(() => ada.page.evaluate(() => document.activeElement?.id === "compliance-title"), "focus on the screen's heading");
  await screen.locator("#holds-empty").waitFor();

  // A malformed target is refused with the server's reason, and nothing is held.
  await screen.getByLabel("Hold on").selectOption({ label: "Conversation" });
  await screen.getByLabel("Target").fill("not-a-number");
  await screen.getByLabel("Reason", { exact: true }).first().fill("Court order 1");
  await screen.getByRole("button", { name: "Set hold" }).click();
  await screen.locator("#compliance-error", { hasText: "HOLD_TARGET_INVALID" }).waitFor();
  await screen.locator("#holds-empty").waitFor();

  // The case is held.
  await screen.getByLabel("Hold on").selectOption({ label: "Case" });
  await screen.getByLabel("Target").fill("CASE-HOLD-7");
  await screen.locator("#hold-reason").fill("Litigation hold, claim 2026/114");
  await screen.getByRole("button", { name: "Set hold" }).click();
  const row = screen.locator('.hold-row[data-scope="case"][data-target="CASE-HOLD-7"]');
  await row.waitFor();
  assert.match(await row.textContent(), /Litigation hold, claim 2026\/114.*ada-gdpr/);
  await screen.locator("#compliance-status", { hasText: "Hold set on Case CASE-HOLD-7." }).waitFor();
  assert.deepEqual(await axeViolations(ada.page), [], "Compliance screen: serious or critical accessibility violations");

  // Erasing needs the confirmation; under the hold Ben's message is kept, and the result says why.
  await screen.locator("#erase-user").fill("ben-gdpr");
  await screen.locator("#erase-reason").fill("Art. 17 request of 3 Dec");
  await screen.getByRole("button", { name: "Erase user" }).click();
  await screen.locator("#compliance-error", { hasText: "Tick the confirmation first" }).waitFor();
  await screen.getByLabel("I understand an erasure cannot be undone").check();
  await screen.getByRole("button", { name: "Erase user" }).click();
  await screen.locator("#compliance-status", { hasText: "Erased ben-gdpr" }).waitFor({ timeout: 30_000 });
  assert.match(await screen.locator("#compliance-status").textContent(), /0 messages and 0 attachments erased\. Kept under legal hold in 1 conversation\./);
  assert.match(await screen.locator("#erase-kept").textContent(), /1 message kept by the hold on Case CASE-HOLD-7/);
  assert.ok((await ann.messages()).includes("My account number is 12345678"), "kept while the hold is in force");

  // Released (after confirming), the erasure runs again and finishes.
  await row.getByRole("button", { name: "Release the hold on Case CASE-HOLD-7" }).click();
  await row.getByRole("button", { name: "Release hold on Case CASE-HOLD-7" }).click();
  await row.waitFor({ state: "detached" });
  await screen.locator("#compliance-status", { hasText: "Released the hold on Case CASE-HOLD-7." }).waitFor();
  await screen.locator("#erase-user").fill("ben-gdpr");
  await screen.locator("#erase-reason").fill("Art. 17 request of 3 Dec, hold released");
  await screen.getByLabel("I understand an erasure cannot be undone").check();
  await screen.getByRole("button", { name: "Erase user" }).click();
  await screen.locator("#compliance-status", { hasText: "1 message and 0 attachments erased." }).waitFor({ timeout: 30_000 });
  assert.equal(await screen.locator("#erase-kept").count(), 0);

  // Ann sees the tombstone, live, and the number is gone from her screen.
  await ann.page.locator(".msg.deleted .body", { hasText: "message deleted" }).waitFor({ timeout: 15_000 });
  assert.ok(!(await ann.messages()).some((t) => t.includes("12345678")), "the erased text is gone");

  // The whole conversation is erased by its id (its header shows it): Ann sees it archived.
  const convId = await ann.page.locator(".conv.active").getAttribute("data-conv");
  assert.match(await ann.page.locator("#chat-conv-id").textContent(), new RegExp(`#${convId}$`));
  await screen.locator("#erase-conv-id").fill(convId);
  await screen.locator("#erase-conv-reason").fill("Matter closed; client's instruction");
  await screen.getByLabel("I understand erasing a conversation cannot be undone").check();
  await screen.getByRole("button", { name: "Erase conversation" }).click();
  await screen.locator("#compliance-status", { hasText: `Erased conversation ${convId}:` }).waitFor({ timeout: 30_000 });
  assert.match(await screen.locator("#compliance-status").textContent(), /\d+ messages? and 0 attachments removed; it stays archived\. Its encryption key is destroyed\./);
  await ann.page.locator("#chat-header", { hasText: "archived" }).waitFor({ timeout: 15_000 });
  await until(async () => (await ann.messages()).length === 0, "Ann's open view drops the erased messages, live");
  await screen.locator("#erase-conv-id").fill(convId);
  await screen.locator("#erase-conv-reason").fill("again");
  await screen.getByLabel("I understand erasing a conversation cannot be undone").check();
  await screen.getByRole("button", { name: "Erase conversation" }).click();
  await screen.locator("#compliance-status", { hasText: "0 messages and 0 attachments removed" }).waitFor({ timeout: 30_000 });

  await ada.page.keyboard.press("Escape");
  await ada.page.locator("#compliance-screen").waitFor({ state: "detached" });
  await until(() => ada.page.evaluate(() => document.activeElement?.id === "compliance-button"), "focus back on the Compliance button");
  for (const u of [ann, ada]) assert.deepEqual(u.console.filter((l) => l.startsWith("pageerror")), [], `${u.name}: no page errors`);
});
