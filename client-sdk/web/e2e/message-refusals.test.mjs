// What the server refuses is shown, and what it allows an admin is done: on
// a chatd with a 1 s edit window and `messages.moderators_delete` off, a late
// edit and a group admin's delete of another member's message show the
// server's reason and change nothing; on the default one, the admin's delete
// works and the others see whose it was and who deleted it. Over
// WebTransport and over the WebSocket fallback.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BrowserUser, Chatd, chatdForFile, NO_WEBTRANSPORT, sleep } from "./harness.mjs";

const ctx = chatdForFile({ CHAT_MESSAGES__EDIT_WINDOW_SECS: "1", CHAT_MESSAGES__MODERATORS_DELETE: "false" });

/** Signs in an admin of a new group with one other member; returns both, the group open for each. */
async function group(chatd, title, transport) {
  const opts = transport === "websocket" ? { initScript: NO_WEBTRANSPORT } : {};
  const ada = await BrowserUser.open(`ada-${title}`, opts);
  const kim = await BrowserUser.open(`kim-${title}`, opts);
  ctx.users.push(ada, kim);
  await ada.signIn(chatd, chatd.token(`ada-${title}`, "advocate", "Ada Admin"));
  await kim.signIn(chatd, chatd.token(`kim-${title}`, "advocate", "Kim Member"));
  await ada.page.click("#new-conv");
  await ada.page.selectOption("#new-kind", "group");
  await ada.page.fill("#new-title", title);
  await ada.page.fill("#new-members", `kim-${title}`);
  await ada.page.click("#create");
  await ada.page.locator("#chat-title", { hasText: title }).waitFor();
  await kim.open(title);
  for (const u of [ada, kim]) assert.equal(await u.transport(), transport);
  return { ada, kim };
}

const msgWith = (u, text) => u.page.locator(".msg:not(.pending)", { has: u.page.locator(".body", { hasText: text }) }).first();

async function deleteAsAdmin(ada, text) {
  const m = msgWith(ada, text);
  await m.hover();
  await m.getByRole("button", { name: "Delete" }).click();
  await ada.page.locator(".confirm-delete").click();
}

for (const transport of ["webtransport", "websocket"]) {
  test(`a late edit and a refused delete show the server's reason and change nothing (${transport})`, { timeout: 120_000 }, async () => {
    const { ada, kim } = await group(ctx.chatd, `refusals-${transport}`, transport);
    await kim.send("Kim's note on the lease");
    await ada.waitForMessage("Kim's note on the lease");
    await ada.send("Draft reply, to be corrected");
    await ada.waitForMessage("Draft reply");
    // The delete of another member's message, which this server keeps to senders.
    await deleteAsAdmin(ada, "Kim's note on the lease");
    await ada.page.locator("#status .banner", { hasText: "NOT_YOUR_MESSAGE" }).waitFor();
    // Past the 1 s edit window.
    await sleep(1500);
    const mine = msgWith(ada, "Draft reply");
    await mine.hover();
    await mine.getByRole("button", { name: "Edit" }).click();
    const editor = ada.page.getByRole("textbox", { name: "Edit message" });
    await editor.fill("Corrected reply");
    await editor.press("Enter");
    await ada.page.locator("#status .banner", { hasText: "EDIT_WINDOW_CLOSED" }).waitFor();
    // Nothing changed, for either.
    await sleep(500);
    for (const u of [ada, kim]) {
      await msgWith(u, "Kim's note on the lease").waitFor();
      assert.equal(await u.page.locator(".msg.deleted").count(), 0, `${u.name}: nothing deleted`);
      assert.equal(await u.page.locator(".msg .edited").count(), 0, `${u.name}: nothing edited`);
      assert.equal(await u.page.locator(".msg .body", { hasText: "Corrected reply" }).count(), 0);
    }
  });

  test(`a group admin deletes another member's message where the server allows it (${transport})`, { timeout: 120_000 }, async () => {
    const chatd = await new Chatd().start();
    try {
      const { ada, kim } = await group(chatd, `moderation-${transport}`, transport);
      await kim.send("Posted in the wrong group");
      await ada.waitForMessage("Posted in the wrong group");
      await deleteAsAdmin(ada, "Posted in the wrong group");
      await kim.page.locator(".msg.deleted", { hasText: "message deleted by Ada Admin" }).waitFor();
      await ada.page.locator(".msg.deleted", { hasText: "message deleted by Ada Admin" }).waitFor();
      // The conversation list's preview of the last message says so too.
      await kim.page.locator(`.conv[data-title="moderation-${transport}"] .conv-last`, { hasText: "You: message deleted" }).waitFor();
      // Kim, a plain member, is offered no delete of Ada's messages.
      await ada.send("Please repost it in the case conversation");
      const adas = msgWith(kim, "Please repost");
      await adas.waitFor();
      await adas.hover();
      assert.equal(await adas.getByRole("button", { name: "Delete" }).count(), 0);
    } finally {
      await chatd.dispose();
    }
  });
}
