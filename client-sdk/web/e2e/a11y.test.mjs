// Accessibility (issue 15, item 6): axe-core finds no serious or critical
// violation on any screen (sign-in, list, conversation, New, Add members,
// Manage, search, templates, support queue, phone); dialogs are labelled modal
// dialogs that keep focus inside, close on Escape and give focus back to
// their opener; a polite live region announces messages from others; read
// and presence have text; focus lands on the conversation list after sign-in.
import assert from "node:assert/strict";
import { test } from "node:test";
import { axeViolations, BrowserUser, chatdForFile } from "./harness.mjs";

const ctx = chatdForFile();

async function clean(u, where) {
  assert.deepEqual(await axeViolations(u.page), [], `${where}: serious or critical accessibility violations`);
}

/** The focused element's id (or tag). */
const focused = (page) => page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);

test("every screen passes axe-core; dialogs trap focus, close on Escape and return focus", { timeout: 180_000 }, async () => {
  const { chatd } = ctx;
  const ann = await BrowserUser.open("ann");
  const ben = await BrowserUser.open("ben");
  const sam = await BrowserUser.open("sam");
  ctx.users.push(ann, ben, sam);

  await ann.page.goto(chatd.webUrl);
  await ann.page.locator("#token").waitFor();
  await clean(ann, "sign-in");

  await ann.page.fill("#token", chatd.token("ann", "advocate", "Ann Advocate"));
  await ann.page.getByRole("button", { name: "Sign in" }).click();
  await ann.page.locator('#status[data-state="online"]').waitFor();
  await ben.signIn(chatd, chatd.token("ben", "client", "Ben Client"));
  // Focus moves from the body to the conversation list (in an effect after paint).
  await ann.page.waitForFunction(() => document.activeElement?.id === "conv-list", null, { timeout: 5_000 });
  await clean(ann, "empty conversation list");

  // The New dialog: a labelled modal dialog, focus inside.
  await ann.page.click("#new-conv");
  const dialog = ann.page.getByRole("dialog", { name: "New conversation" });
  await dialog.waitFor();
  assert.equal(await dialog.getAttribute("aria-modal"), "true");
  await ann.page.waitForFunction(() => document.activeElement?.id === "new-kind", null, { timeout: 5_000 });
  await clean(ann, "New dialog");
  // Tab from the last control wraps to the first; Shift+Tab from the first to the last.
  await ann.page.focus("#create");
  await ann.page.keyboard.press("Tab");
  assert.equal(await focused(ann.page), "new-kind");
  await ann.page.keyboard.press("Shift+Tab");
  assert.equal(await focused(ann.page), "create");
  for (let i = 0; i < 6; i++) {
    await ann.page.keyboard.press("Tab");
    assert.ok(await ann.page.evaluate(() => document.querySelector('[role="dialog"]').contains(document.activeElement)), "focus stays in the dialog");
  }
  // Escape closes it; focus is back on "New".
  await ann.page.keyboard.press("Escape");
  await dialog.waitFor({ state: "detached" });
  await ann.page.waitForFunction(() => document.activeElement?.id === "new-conv");

  await ann.createPrivate("ben");
  await ben.open("Ann Advocate");
  await ann.send("Your hearing is on **Monday**.");
  await ben.waitForMessage("Your hearing is on Monday.");
  // Ben's screen reader hears it through the polite live region.
  const announcer = ben.page.locator('#announcer[aria-live="polite"]');
  await announcer.filter({ hasText: "Ann Advocate" }).waitFor();
  assert.match((await announcer.textContent()) ?? "", /New message from Ann Advocate in Ann Advocate: Your hearing is on Monday\./);
  await ben.send("Thank you");
  await ann.waitForMessage("Thank you");
  // Read is told in words, not only by colour; presence too.
  const read = ann.page.locator('.msg.mine[data-mark="read"] .mark');
  await read.first().waitFor();
  assert.equal(await read.first().getAttribute("aria-label"), "Read");
  assert.equal(await read.first().locator(".mark-text").textContent(), "Read");
  assert.equal(await ann.page.locator('#chat-header [data-presence="ben"]').getAttribute("aria-label"), "online");
  await clean(ann, "conversation view");
  await clean(ben, "conversation view (other side)");

  // A group, and its Add members dialog (labelled input).
  await ann.page.click("#new-conv");
  await ann.page.selectOption("#new-kind", "group");
  await ann.page.fill("#new-title", "Estate of Doe");
  await ann.page.fill("#new-members", "ben");
  await ann.page.click("#create");
  await ann.page.locator("#chat-title", { hasText: "Estate of Doe" }).waitFor();
  const add = ann.page.getByRole("button", { name: "Add", exact: true });
  await add.click();
  const addDialog = ann.page.getByRole("dialog", { name: "Add members" });
  await addDialog.waitFor();
  await ann.page.getByLabel("People (names or user ids, comma separated)").waitFor();
  await clean(ann, "Add members dialog");
  await ann.page.keyboard.press("Escape");
  await addDialog.waitFor({ state: "detached" });
  await ann.page.waitForFunction(() => document.activeElement?.textContent === "Add");

  // Manage: the same dialog frame, its role selects labelled.
  await ann.page.click("#manage-button");
  const manage = ann.page.getByRole("dialog", { name: "Manage “Estate of Doe”" });
  await manage.waitFor();
  await manage.getByLabel("Role of Ben Client").waitFor();
  await clean(ann, "Manage dialog");
  await ann.page.keyboard.press("Escape");
  await manage.waitFor({ state: "detached" });
  await ann.page.waitForFunction(() => document.activeElement?.id === "manage-button");

  // Search.
  await ann.page.fill("#search-input", "hearing");
  await ann.page.press("#search-input", "Enter");
  await ann.page.locator(".search-hit").first().waitFor();
  await clean(ann, "search results");

  // Templates: the same dialog frame.
  await ann.page.click("#templates-button");
  const templates = ann.page.getByRole("dialog", { name: "Templates" });
  await templates.waitFor();
  await clean(ann, "templates");
  await ann.page.keyboard.press("Escape");
  await templates.waitFor({ state: "detached" });
  await ann.page.waitForFunction(() => document.activeElement?.id === "templates-button");

  // The support queue, as staff.
  await ben.page.click("#new-conv");
  await ben.page.selectOption("#new-kind", "support");
  await ben.page.fill("#new-title", "Invoice question");
  await ben.page.click("#create");
  await ben.page.locator("#chat-title", { hasText: "Invoice question" }).waitFor();
  await sam.signIn(chatd, chatd.token("sam", "admin", "Sam Staff"));
  await sam.page.locator(".queue-item", { hasText: "Invoice question" }).waitFor({ timeout: 20_000 });
  await clean(sam, "support queue");
});

test("the phone layout passes axe-core", { timeout: 120_000 }, async () => {
  const { chatd } = ctx;
  const pia = await BrowserUser.open("pia", { viewport: { width: 390, height: 780 } });
  ctx.users.push(pia);
  await pia.signIn(chatd, chatd.token("pia", "client", "Pia Phone"));
  await pia.createPrivate("ann");
  await pia.send("From my phone");
  await pia.waitForMessage("From my phone");
  await clean(pia, "phone: conversation");
  await pia.page.getByRole("button", { name: "Back to conversations" }).click();
  await pia.page.locator('.conv[data-title="Ann Advocate"]').waitFor();
  await clean(pia, "phone: list");
});
