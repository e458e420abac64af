// Replies, edits, reactions, deletes and templates in the web app (issue
// 14/15), two browser users against chatd serve, over WebTransport and over
// the WebSocket fallback: A sends, B answers it (A sees the quote and jumps
// to the original), A edits (B sees the new text and "(edited)"), B reacts
// (A sees the chip, its count and who), A deletes (B sees "message
// deleted"), and A fills the composer from a template through `/` and a
// quick-reply button, with the placeholders filled in, and sends it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { artifactPath, BrowserUser, chatdForFile, NO_WEBTRANSPORT, until } from "./harness.mjs";

const ctx = chatdForFile();

const ORIGINAL = "The hearing is on Monday at 10:00 in room 4.";
const EDITED = "The hearing is on Tuesday at 10:00 in room 4.";

/** A user's message list as "seq: body HTML" lines (pending lines without a seq). */
const shown = (u) =>
  u.page.$$eval(".msg", (els) => els.map((e) => `${e.getAttribute("data-seq") ?? "pending"}: ${e.querySelector(".body")?.innerHTML ?? ""}`).join("\n"));
/** The stored message whose text contains `text`. */
const msgWith = (u, text) => u.page.locator(".msg:not(.pending)", { has: u.page.locator(".body", { hasText: text }) }).first();

/** Whether the element's box lies within the message list's visible box. */
async function inView(page, locator) {
  const [box, list] = await Promise.all([locator.boundingBox(), page.locator("#messages").boundingBox()]);
  return box !== null && list !== null && box.y >= list.y - 1 && box.y + box.height <= list.y + list.height + 1;
}

for (const transport of ["webtransport", "websocket"]) {
  test(`reply, edit, react, delete and templates between two browsers (${transport})`, { timeout: 180_000 }, async () => {
    const opts = transport === "websocket" ? { initScript: NO_WEBTRANSPORT } : {};
    const { chatd, users } = ctx;
    const a = await BrowserUser.open(`ann-${transport}`, opts);
    const b = await BrowserUser.open(`ben-${transport}`, opts);
    users.push(a, b);
    await a.signIn(chatd, chatd.token(`ann-${transport}`, "advocate", "Ann Advocate"));
    await b.signIn(chatd, chatd.token(`ben-${transport}`, "client", "Ben Client"));
    assert.equal(await a.transport(), transport);
    assert.equal(await b.transport(), transport);

    // A sends, then enough more that the first scrolls out of view.
    await a.createPrivate(`ben-${transport}`);
    await a.send(ORIGINAL);
    for (let i = 1; i <= 16; i++) await a.send(`Exhibit list item ${i}`);
    await a.waitForMessage("Exhibit list item 16");

    // B answers the first one: the composer shows what he answers.
    await b.open("Ann Advocate");
    await b.waitForMessage("Exhibit list item 16");
    const original = msgWith(b, ORIGINAL);
    await original.hover();
    await original.getByRole("button", { name: "Reply" }).click();
    await b.page.locator("#replying", { hasText: ORIGINAL }).waitFor();
    await b.send("Noted, I will be there.");
    await b.page.locator("#replying").waitFor({ state: "detached" });
    await msgWith(b, "Noted, I will be there.").locator(".quote", { hasText: ORIGINAL }).waitFor();

    // A sees the quoted preview; a click brings the original into view, highlighted.
    await a.waitForMessage("Noted, I will be there.");
    const reply = msgWith(a, "Noted, I will be there.");
    const quote = reply.locator(".quote");
    await quote.waitFor();
    assert.match(await quote.textContent(), /Ann Advocate.*The hearing is on Monday/);
    const aOriginal = msgWith(a, ORIGINAL);
    assert.equal(await inView(a.page, aOriginal), false, "the original is scrolled away before the jump");
    await quote.click();
    await a.page.locator(".msg.highlight", { hasText: ORIGINAL }).waitFor();
    await until(() => inView(a.page, aOriginal), "the original scrolled into view");

    // Esc leaves the editor without saving.
    await aOriginal.hover();
    await aOriginal.getByRole("button", { name: "Edit" }).click();
    const editor = a.page.getByRole("textbox", { name: "Edit message" });
    await editor.fill("Not this");
    await editor.press("Escape");
    await editor.waitFor({ state: "detached" });
    await aOriginal.locator(".body", { hasText: ORIGINAL }).waitFor();

    // A edits it (inline: Enter saves); B sees the new text, "(edited)", and the quote follows.
    // Keyboard only: the Edit button is reached by focus, and Enter presses it.
    await aOriginal.getByRole("button", { name: "Edit" }).focus();
    await a.page.keyboard.press("Enter");
    await editor.fill(EDITED);
    await editor.press("Enter");
    await msgWith(a, EDITED).locator(".edited", { hasText: "(edited)" }).waitFor();
    const bEdited = msgWith(b, EDITED);
    await bEdited.locator(".edited", { hasText: "(edited)" }).waitFor();
    const stale = await b.page.locator(".msg .body", { hasText: ORIGINAL }).count();
    // On failure, what Ben sees (once the edit itself held both texts: the editor moved its caret after the test selected all).
    assert.equal(stale, 0, `the old text is gone; Ben's list:\n${stale ? await shown(b) : ""}`);
    await msgWith(b, "Noted, I will be there.").locator(".quote", { hasText: EDITED }).waitFor();
    // An edit of his own message is not offered to B for A's.
    await bEdited.hover();
    assert.equal(await bEdited.getByRole("button", { name: "Edit" }).count(), 0);

    // B reacts from the palette; A sees the chip with its count and who reacted.
    await bEdited.getByRole("button", { name: "React", exact: true }).click();
    await b.page.getByRole("menuitem", { name: "React 👍" }).click();
    const aChip = msgWith(a, EDITED).locator('.chip[data-emoji="👍"]');
    await aChip.waitFor();
    assert.equal((await aChip.locator(".count").textContent())?.trim(), "1");
    assert.match((await aChip.getAttribute("title")) ?? "", /Ben Client/);
    // A adds hers by clicking the chip: two; B clicks his away: one, Ann's.
    await aChip.click();
    const bChip = bEdited.locator('.chip[data-emoji="👍"]');
    await bChip.locator(".count", { hasText: "2" }).waitFor();
    await bChip.click();
    await aChip.locator(".count", { hasText: "1" }).waitFor();
    await until(async () => !/Ben Client/.test((await aChip.getAttribute("title")) ?? ""), "Ben's reaction taken away");
    assert.equal(await aChip.getAttribute("aria-pressed"), "true");

    await a.page.screenshot({ path: artifactPath(`message-features-${transport}.png`) });

    // A deletes it (after confirming); B sees "message deleted", the reply's quote too.
    const aEdited = msgWith(a, EDITED);
    await aEdited.hover();
    await aEdited.getByRole("button", { name: "Delete" }).click();
    await a.page.getByRole("button", { name: "Delete", exact: true }).and(a.page.locator(".confirm-delete")).click();
    const bDeleted = b.page.locator(".msg.deleted", { hasText: "message deleted" });
    await bDeleted.waitFor();
    assert.equal(await b.page.locator(".msg .body", { hasText: EDITED }).count(), 0, "the text is gone for B");
    assert.equal(await bDeleted.locator(".chip").count(), 0, "no reactions on a deleted message");
    await msgWith(b, "Noted, I will be there.").locator(".quote", { hasText: "message deleted" }).waitFor();

    // Templates: A has one; `/` lists it, filtered as she types; Enter fills it in.
    await a.page.evaluate(() => globalThis.chatApp.templates.create(1, "confirm", "Dear {client_name}, {my_name} confirms your appointment."));
    await a.page.fill("#composer-input", "");
    await a.page.type("#composer-input", "/");
    const menu = a.page.getByRole("listbox", { name: "Templates" });
    await menu.getByRole("option", { name: /confirm/ }).waitFor();
    await a.page.type("#composer-input", "conf");
    assert.equal(await menu.getByRole("option").count(), 1);
    await a.page.press("#composer-input", "Enter");
    const filled = "Dear Ben Client, Ann Advocate confirms your appointment.";
    await until(async () => (await a.page.inputValue("#composer-input")) === filled, "the rendered template in the composer");
    await a.page.press("#composer-input", "Enter");
    await b.waitForMessage(filled);
    // One click on the quick reply fills the composer the same way.
    await a.page.getByRole("group", { name: "Quick replies" }).getByRole("button", { name: "confirm" }).click();
    await until(async () => (await a.page.inputValue("#composer-input")) === filled, "the quick reply in the composer");

    for (const u of [a, b]) assert.deepEqual(u.console.filter((l) => l.startsWith("pageerror")), [], `${u.name}: no page errors`);
  });
}
