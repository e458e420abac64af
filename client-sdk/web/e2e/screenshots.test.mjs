// The README's screenshots (issue 15): a realistic case conversation (three
// people, an attachment, a reply) seen on a desktop and on a 390×844 phone.
// Every run renders them into e2e/artifacts/; with UPDATE_SCREENSHOTS=1 the
// run also refreshes docs/screenshots/ (commit those), so CI leaves the tree
// clean.
import assert from "node:assert/strict";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { artifactPath, BrowserUser, chatdForFile, REPO, RustUser } from "./harness.mjs";

const ctx = chatdForFile();
/** A small PDF (the server checks what a file says it is). */
const PDF = Buffer.from(
  "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n" +
    "trailer << /Root 1 0 R >>\n%%EOF\n" +
    "x".repeat(48_000),
);
/** Largest a committed screenshot may be. */
const MAX_PNG_BYTES = 300 * 1024;

/** Saves the page's screenshot as `name` in the artifacts (and the docs when asked); returns its bytes. */
async function shoot(page, name) {
  const out = artifactPath(name);
  await page.screenshot({ path: out });
  if (process.env.UPDATE_SCREENSHOTS === "1") copyFileSync(out, join(REPO, "docs/screenshots", name));
  return readFileSync(out);
}

test("desktop and phone screenshots of a case conversation", { timeout: 180_000 }, async () => {
  const { chatd } = ctx;
  const cat = await RustUser.start(chatd, chatd.token("cat", "advocate", "Cat Clerk"));
  const ann = await BrowserUser.open("ann-shots", { viewport: { width: 1280, height: 800 } });
  const ben = await BrowserUser.open("ben-shots", { viewport: { width: 390, height: 844 } });
  ctx.users.push(ann, ben);
  try {
    await ann.signIn(chatd, chatd.token("ann", "advocate", "Ann Advocate"));
    await ben.signIn(chatd, chatd.token("ben", "client", "Ben Client"));

    await ann.page.click("#new-conv");
    await ann.page.selectOption("#new-kind", "case");
    await ann.page.fill("#new-case", "2026-CV-0113");
    await ann.page.fill("#new-title", "Harbour Street lease");
    await ann.page.fill("#new-members", "ben, cat");
    await ann.page.click("#create");
    await ann.page.locator("#chat-title", { hasText: "2026-CV-0113" }).waitFor();
    const first = "Good morning both. The landlord's reply came overnight:\n- the rent review clause is disputed\n- the hearing is on **12 January**";
    await ann.send(first);
    await ann.waitForMessage("The landlord's reply came overnight");

    await ben.page.locator(".conv", { hasText: "2026-CV-0113" }).click();
    await ben.waitForMessage("The landlord's reply came overnight");
    await ben.send("Thank you. Do you need the original lease from me?");
    await ann.waitForMessage("Do you need the original lease");

    const { conversations } = await cat.call({ cmd: "list" });
    const conv = (conversations ?? []).map((c) => c.conv).find(Boolean);
    assert.ok(conv, "the clerk sees the case");
    await cat.call({ cmd: "send", conv, text: "I scanned the original lease and the 2019 addendum this morning." });
    await ann.waitForMessage("I scanned the original lease");

    await ann.page.setInputFiles("#attach-input", [
      { name: "lease-addendum-2019.pdf", mimeType: "application/pdf", buffer: PDF },
    ]);
    await ann.page.locator(".upload.done").waitFor({ timeout: 20_000 });
    await ann.send("Here is the addendum for the file.");
    await ann.waitForMessage("Here is the addendum");

    await ben.waitForMessage("Here is the addendum");
    const original = ben.page.locator(".msg:not(.pending)", { has: ben.page.locator(".body", { hasText: "The landlord's reply" }) }).first();
    await original.hover();
    await original.getByRole("button", { name: "Reply" }).click();
    await ben.send("Noted, I will keep 12 January free.");
    await ann.waitForMessage("I will keep 12 January free");
    await ann.page.locator(".msg .quote").first().waitFor();
    await ben.page.mouse.move(0, 0);

    for (const [u, name, width, height] of [
      [ann, "desktop.png", 1280, 800],
      [ben, "phone.png", 390, 844],
    ]) {
      const png = await shoot(u.page, name);
      assert.equal(png.readUInt32BE(16), width, `${name} width`);
      assert.equal(png.readUInt32BE(20), height, `${name} height`);
      assert.ok(png.length < MAX_PNG_BYTES, `${name} is ${png.length} bytes`);
    }
  } finally {
    await cat.close();
  }
});
