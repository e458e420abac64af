// The Audit screen (issue 16), system admins only: an advocate has no Audit
// button; an admin opens the screen, sees the trail (the configuration at
// start, sessions), filters it by user and event kind down to the
// advocate's new conversation, exports it as CSV (the browser saves the
// file, and the export is itself in the trail), and closes it with Esc;
// axe finds no serious or critical violation on it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { axeViolations, BrowserUser, chatdForFile, until } from "./harness.mjs";

const ctx = chatdForFile();

/** The event kinds of the rows on the screen, in order. */
function kinds(u) {
  return u.page.$$eval("#audit-entries .audit-entry", (rows) => rows.map((r) => r.getAttribute("data-kind")));
}

test("an admin filters and exports the audit trail on the Audit screen", { timeout: 180_000 }, async () => {
  const { chatd, users } = ctx;
  const ann = await BrowserUser.open("ann-audit");
  const ada = await BrowserUser.open("ada-audit");
  users.push(ann, ada);
  await ann.signIn(chatd, chatd.token("ann-audit", "advocate", "Ann Advocate"));
  await ada.signIn(chatd, chatd.token("ada-audit", "admin", "Ada Admin"));

  // Only admins are offered the screen.
  assert.equal(await ann.page.locator("#audit-button").count(), 0);
  await ann.page.click("#new-conv");
  await ann.page.selectOption("#new-kind", "group");
  await ann.page.fill("#new-title", "Estate of Smith");
  await ann.page.fill("#new-members", "ada-audit"); // in the directory: she signed in above
  await ann.page.click("#create");
  await ann.page.locator("#chat-title", { hasText: "Estate of Smith" }).waitFor();

  await ada.page.click("#audit-button");
  const screen = ada.page.getByRole("dialog", { name: "Audit trail" });
  await screen.waitFor();
  await until(() => ada.page.evaluate(() => document.activeElement?.id === "audit-title"), "focus on the screen's heading");
  await until(async () => (await kinds(ada)).includes("config.start"), "the whole trail listed");
  assert.ok((await kinds(ada)).includes("session.opened"));
  assert.deepEqual(await axeViolations(ada.page), [], "Audit screen: serious or critical accessibility violations");

  // By user and kind: Ann's conversation, one entry.
  await screen.getByLabel("User", { exact: true }).fill("ann-audit");
  await screen.getByLabel("Event").selectOption("conversation.created");
  await screen.getByRole("button", { name: "Search" }).click();
  await until(async () => JSON.stringify(await kinds(ada)) === JSON.stringify(["conversation.created"]), "one conversation.created row");
  const row = await screen.locator(".audit-entry").first().textContent();
  assert.match(row, /ann-audit/);
  assert.match(row, /Estate of Smith/);
  await screen.locator("#audit-status", { hasText: "1 entry." }).waitFor();

  // A bad field is named, nothing is asked.
  await screen.getByLabel("Conversation", { exact: true }).fill("twelve");
  await screen.getByRole("button", { name: "Search" }).click();
  await screen.locator("#audit-error", { hasText: "Conversation: a conversation id (digits)" }).waitFor();
  await screen.getByLabel("Conversation", { exact: true }).fill("");

  // Export as CSV: the browser saves the file, and the export is audited.
  const [download] = await Promise.all([ada.page.waitForEvent("download"), screen.getByRole("button", { name: "Export CSV" }).click()]);
  assert.match(download.suggestedFilename(), /^audit-.*\.csv$/);
  const csv = readFileSync(await download.path(), "utf8").split("\n");
  assert.equal(csv[0], "chain,seq,at_ms,kind,actor,conversation_id,target_user,details,prev_hash,hash");
  assert.equal(csv.filter((l) => l.includes(",conversation.created,ann-audit,")).length, 1);
  assert.equal(csv.length, 3, "header, one entry, final newline");
  await screen.locator("#audit-status", { hasText: "Exported 1 entry as CSV." }).waitFor();
  await screen.getByLabel("User", { exact: true }).fill("");
  await screen.getByLabel("Event").selectOption("audit.exported");
  await screen.getByRole("button", { name: "Search" }).click();
  await until(async () => JSON.stringify(await kinds(ada)) === JSON.stringify(["audit.exported"]), "the export is in the trail");
  assert.match(await screen.locator(".audit-entry").first().textContent(), /"format":"csv"/);

  // Esc closes it; focus goes back to the Audit button.
  await ada.page.keyboard.press("Escape");
  await ada.page.locator("#audit-screen").waitFor({ state: "detached" });
  await until(() => ada.page.evaluate(() => document.activeElement?.id === "audit-button"), "focus back on the Audit button");
  assert.deepEqual(ada.console.filter((l) => l.startsWith("pageerror")), []);
});
