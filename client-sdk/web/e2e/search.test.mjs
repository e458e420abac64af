// Search in the web app, two real browsers: Ben finds Ann's message by a
// word from another conversation, sees the word marked in the snippet, and
// a click opens the conversation with that message highlighted. A word
// from a conversation Ben is not in finds nothing for him. Over WebTransport
// and over the WebSocket fallback.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BrowserUser, chatdForFile, NO_WEBTRANSPORT, until } from "./harness.mjs";

const ctx = chatdForFile();

for (const transport of ["webtransport", "websocket"]) {
  test(`a word finds its message, marked, and a click opens it (${transport})`, { timeout: 120_000 }, async () => {
    const opts = transport === "websocket" ? { initScript: NO_WEBTRANSPORT } : {};
    const ann = await BrowserUser.open(`ann-search-${transport}`, opts);
    const ben = await BrowserUser.open(`ben-search-${transport}`, opts);
    const carl = await BrowserUser.open(`carl-search-${transport}`, opts);
    ctx.users.push(ann, ben, carl);
    // Carl is in the directory once he has signed in (a conversation Ben is not in, below).
    await carl.signIn(ctx.chatd, ctx.chatd.token(`carl-search-${transport}`, "client", "Carl Client"));
    await ann.signIn(ctx.chatd, ctx.chatd.token(`ann-search-${transport}`, "advocate", "Ann Advocate"));
    await ben.signIn(ctx.chatd, ctx.chatd.token(`ben-search-${transport}`, "client", "Ben Client"));
    assert.equal(await ann.transport(), transport);
    assert.equal(await ben.transport(), transport);
    await ann.createPrivate(`ben-search-${transport}`);
    await ann.send("Please countersign the retainer agreement by Friday");
    for (let i = 0; i < 12; i++) await ann.send(`filler line ${i}`);
    await ann.waitForMessage("filler line 11");
    // A conversation Ben is not in.
    await ann.createPrivate(`carl-search-${transport}`);
    await ann.send("The settlement figure stays between us");
    await ann.waitForMessage("settlement figure");

    const search = async (word) => {
      await ben.page.fill("#search-input", word);
      await ben.page.press("#search-input", "Enter");
    };
    // Indexing is asynchronous (commits every 500 ms): ask until it is there.
    const hit = ben.page.locator(".search-hit", { hasText: "countersign" });
    await until(async () => {
      await search("retainer");
      await ben.page.locator("#search-results :is(.search-hit, .muted)").first().waitFor();
      return (await hit.count()) > 0;
    }, "the hit for retainer");
    assert.equal(await hit.locator("mark").textContent(), "retainer");
    await hit.click();
    await ben.page.locator(".msg.highlight .body", { hasText: "retainer agreement" }).waitFor();

    await search("settlement");
    await ben.page.locator("#search-results .muted", { hasText: "No messages match" }).waitFor({ timeout: 10_000 });
    assert.equal(await ben.page.locator(".search-hit").count(), 0, "nothing from a conversation he is not in");
  });
}
