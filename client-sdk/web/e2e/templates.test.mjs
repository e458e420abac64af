// The Templates screen (issue 14), over WebTransport and over the WebSocket
// fallback: an advocate writes a personal template with placeholders on the
// screen (the server's refusals show next to their field, the preview fills
// the placeholders), edits it, uses it through `/` in a case conversation and
// the client receives the filled text; once deleted it is gone from the `/`
// menu. An admin writes a firm template; the client sees it, read-only, on
// his screen and in his `/` menu.
import assert from "node:assert/strict";
import { test } from "node:test";
import { artifactPath, BrowserUser, chatdForFile, NO_WEBTRANSPORT, until } from "./harness.mjs";

const ctx = chatdForFile();

/** Opens the Templates screen from the header; returns it. */
async function openScreen(u) {
  await u.page.click("#templates-button");
  const screen = u.page.getByRole("dialog", { name: "Templates" });
  await screen.waitFor();
  await until(() => u.page.evaluate(() => document.activeElement?.id === "templates-title"), "focus on the screen's heading");
  return screen;
}

/** Closes it with Esc; focus goes back to the header's button. */
async function closeScreen(u) {
  await u.page.keyboard.press("Escape");
  await u.page.locator("#templates-screen").waitFor({ state: "detached" });
  await until(() => u.page.evaluate(() => document.activeElement?.id === "templates-button"), "focus back on the Templates button");
}

/** The names the composer's `/` menu offers for what is typed (none: an empty menu). */
async function slashMenu(u, typed) {
  await u.page.fill("#composer-input", "");
  await u.page.type("#composer-input", typed);
  await u.page.locator("#template-menu").waitFor();
  await u.page.waitForTimeout(300); // the menu re-lists the templates when it opens
  return u.page.$$eval("#template-menu [role=option]", (els) => els.map((e) => e.getAttribute("data-name")));
}

for (const transport of ["webtransport", "websocket"]) {
  test(`templates are written, used and removed on the Templates screen (${transport})`, { timeout: 180_000 }, async () => {
    const opts = transport === "websocket" ? { initScript: NO_WEBTRANSPORT } : {};
    const { chatd, users } = ctx;
    const ann = await BrowserUser.open(`ann-tpl-${transport}`, opts);
    const ben = await BrowserUser.open(`ben-tpl-${transport}`, opts);
    const ada = await BrowserUser.open(`ada-tpl-${transport}`, opts);
    users.push(ann, ben, ada);
    await ann.signIn(chatd, chatd.token(`ann-tpl-${transport}`, "advocate", "Ann Advocate"));
    await ben.signIn(chatd, chatd.token(`ben-tpl-${transport}`, "client", "Ben Client"));
    await ada.signIn(chatd, chatd.token(`ada-tpl-${transport}`, "admin", "Ada Admin"));
    for (const u of [ann, ben, ada]) assert.equal(await u.transport(), transport);

    // A case conversation between Ann and Ben.
    const caseId = `CASE-${transport === "websocket" ? 2 : 1}`;
    await ann.page.click("#new-conv");
    await ann.page.selectOption("#new-kind", "case");
    await ann.page.fill("#new-case", caseId);
    await ann.page.fill("#new-title", "Lease");
    await ann.page.fill("#new-members", `ben-tpl-${transport}`);
    await ann.page.click("#create");
    await ann.page.locator("#chat-title", { hasText: caseId }).waitFor();

    // Ann writes a template; the server's refusals show next to their field.
    let screen = await openScreen(ann);
    await screen.getByRole("button", { name: "New template" }).click();
    const name = screen.getByLabel("Name (typed after /)");
    const body = screen.getByLabel("Text");
    await until(() => ann.page.evaluate(() => document.activeElement?.id === "template-name"), "focus on the name");
    await name.fill("Update!");
    await body.fill("Dear {client_name}, news on {case_id}: {fee}");
    // The preview fills what it knows and marks what it does not.
    assert.equal(await screen.locator("#template-preview").textContent(), "Dear Jane Client, news on 2024-CV-0113: {fee}");
    await screen.getByRole("button", { name: "Save" }).click();
    await screen.locator("#template-name-error", { hasText: /INVALID_ARGUMENT: template name "Update!" may hold only a-z/ }).waitFor();
    assert.equal(await name.getAttribute("aria-invalid"), "true");
    await name.fill("update");
    await screen.getByRole("button", { name: "Save" }).click();
    await screen.locator("#template-body-error", { hasText: /INVALID_ARGUMENT: unknown placeholder \{fee\}/ }).waitFor();
    assert.equal(await screen.locator("#template-name-error").count(), 0, "the name is no longer blamed");
    await body.fill("Dear {client_name}, news on {case_id}.");
    await screen.getByRole("button", { name: "Save" }).click();
    const row = screen.locator('.template-row[data-name="update"]');
    await row.waitFor();
    assert.match(await row.textContent(), /\/update.*Personal.*Dear \{client_name\}, news on \{case_id\}\./);
    await screen.locator("#templates-status", { hasText: "Saved /update." }).waitFor();

    // She edits it: the open case conversation shows it filled in by the server.
    await row.getByRole("button", { name: "Edit /update" }).click();
    await screen.locator("#template-preview-conv", { hasText: `Dear Ben Client, news on ${caseId}.` }).waitFor();
    await body.fill("Dear {client_name}, there is news on {case_id}.");
    await screen.locator("#template-preview-conv", { hasText: "Save it to see it filled in" }).waitFor();
    await screen.getByRole("button", { name: "Save" }).click();
    await row.locator(".template-body", { hasText: "there is news" }).waitFor();
    await ann.page.screenshot({ path: artifactPath(`templates-${transport}.png`) });
    await closeScreen(ann);

    // Through `/` in the composer: filled in for the case; Ben receives the text.
    assert.deepEqual(await slashMenu(ann, "/upd"), ["update"]);
    await ann.page.press("#composer-input", "Enter");
    const filled = `Dear Ben Client, there is news on ${caseId}.`;
    await until(async () => (await ann.page.inputValue("#composer-input")) === filled, "the edited template, filled in");
    await ann.page.press("#composer-input", "Enter");
    await ben.open(`Lease · ${caseId}`);
    await ben.waitForMessage(filled);

    // Deleted (after confirming), it is gone from the `/` menu.
    screen = await openScreen(ann);
    await screen.getByRole("button", { name: "Delete /update" }).click();
    await screen.locator(".confirm-delete-template").click();
    await row.waitFor({ state: "detached" });
    await screen.locator("#templates-status", { hasText: "Deleted /update." }).waitFor();
    await closeScreen(ann);
    assert.deepEqual(await slashMenu(ann, "/upd"), []);
    await ann.page.locator("#template-menu", { hasText: "No template starts with that" }).waitFor();
    await ann.page.keyboard.press("Escape");

    // An admin writes a firm template.
    const firmName = `hours-${transport}`;
    screen = await openScreen(ada);
    await screen.getByRole("button", { name: "New template" }).click();
    await screen.getByLabel("Scope").selectOption({ label: "Firm (everyone)" });
    await screen.getByLabel("Name (typed after /)").fill(firmName);
    await screen.getByLabel("Text").fill("Our office is open 9-17. {my_name}");
    await screen.getByRole("button", { name: "Save" }).click();
    const adaRow = screen.locator(`.template-row[data-name="${firmName}"]`);
    await adaRow.waitFor();
    assert.equal(await adaRow.getAttribute("data-scope"), "firm");
    assert.equal(await adaRow.getByRole("button", { name: `Edit /${firmName}` }).count(), 1, "the admin may edit it");
    await closeScreen(ada);

    // Ben sees it, read-only, and may use it; he cannot write a firm one.
    screen = await openScreen(ben);
    const benRow = screen.locator(`.template-row[data-name="${firmName}"]`);
    await benRow.waitFor();
    assert.match(await benRow.textContent(), /Firm.*read-only.*Our office is open 9-17/);
    assert.equal(await benRow.getByRole("button").count(), 0, "no Edit or Delete for a firm template");
    await screen.getByRole("button", { name: "New template" }).click();
    await screen.getByLabel("Name (typed after /)").waitFor();
    assert.equal(await screen.getByLabel("Scope").count(), 0, "no scope to choose: personal only");
    await ben.page.keyboard.press("Escape"); // leaves the editor
    await screen.getByRole("button", { name: "New template" }).waitFor();
    await closeScreen(ben);
    assert.deepEqual(await slashMenu(ben, `/${firmName}`), [firmName]);
    await ben.page.press("#composer-input", "Enter");
    await until(async () => (await ben.page.inputValue("#composer-input")) === "Our office is open 9-17. Ben Client", "the firm template, filled in");

    for (const u of [ann, ben, ada]) assert.deepEqual(u.console.filter((l) => l.startsWith("pageerror")), [], `${u.name}: no page errors`);
  });
}
