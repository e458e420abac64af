// No dead ends for a message (issue 15, item 5): a send refused by the
// message limit shows the reason with Retry and Discard, goes out by itself
// once the limit's retry_after passes, and a discarded one never arrives;
// messages written while the server is down outlive a reload (IndexedDB)
// and arrive exactly once, with their original client_msg_id, when the app
// comes back.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BrowserUser, Chatd, chatdForFile, sleep, until } from "./harness.mjs";

// 6 a minute: a burst of 6, then one every 10 s.
const ctx = chatdForFile({ CHAT_LIMITS__MESSAGES_PER_MINUTE: "6" });

const pendingWith = (u, text) => u.page.locator(".msg.pending", { has: u.page.locator(".body", { hasText: text }) });

test("a refused send offers Retry and Discard and goes out by itself after retry_after", { timeout: 120_000 }, async () => {
  const { chatd } = ctx;
  const rae = await BrowserUser.open("rae");
  const sid = await BrowserUser.open("sid");
  ctx.users.push(rae, sid);
  await rae.signIn(chatd, chatd.token("rae", "advocate", "Rae"));
  await sid.signIn(chatd, chatd.token("sid", "client", "Sid"));
  await rae.createPrivate("sid");
  await sid.open("Rae");
  for (let i = 1; i <= 6; i++) await rae.send(`within the limit ${i}`);
  await rae.waitForMessage("within the limit 6");
  await rae.send("over the limit, kept");
  const kept = pendingWith(rae, "over the limit, kept");
  await kept.locator(".error", { hasText: "RATE_LIMITED" }).waitFor();
  await kept.getByRole("button", { name: "Retry" }).waitFor();
  await kept.getByRole("button", { name: "Discard" }).waitFor();
  await kept.locator(".retry-note").waitFor();
  await rae.send("over the limit, discarded");
  const dropped = pendingWith(rae, "over the limit, discarded");
  await dropped.getByRole("button", { name: "Discard" }).click();
  await dropped.waitFor({ state: "detached" });
  // Retried by itself once the limit lets it through (about 10 s).
  await sid.waitForMessage("over the limit, kept", 40_000);
  await kept.waitFor({ state: "detached" });
  await sleep(1000);
  const expected = [...Array.from({ length: 6 }, (_, i) => `within the limit ${i + 1}`), "over the limit, kept"];
  assert.deepEqual(await sid.messages(), expected);
  assert.deepEqual(await rae.messages(), expected);
  // Nothing comes back after a reload: the store holds nothing unsent.
  await rae.page.reload();
  await rae.page.locator('#status[data-state="online"]').waitFor();
  await rae.open("Sid");
  await rae.waitForMessage("over the limit, kept");
  await sleep(1000);
  assert.equal(await rae.page.locator(".msg.pending").count(), 0);
  assert.deepEqual(await sid.messages(), expected);
});

test("messages written while the server is down outlive a reload and arrive exactly once", { timeout: 180_000 }, async () => {
  const chatd = await new Chatd().start();
  const uma = await BrowserUser.open("uma");
  const vic = await BrowserUser.open("vic");
  try {
    await uma.signIn(chatd, chatd.token("uma", "advocate", "Uma"));
    await vic.signIn(chatd, chatd.token("vic", "client", "Vic"));
    await uma.createPrivate("vic");
    await vic.open("Uma");
    await uma.send("before the outage");
    await vic.waitForMessage("before the outage");

    await chatd.stop();
    await until(async () => (await uma.page.locator("#status").getAttribute("data-state")) !== "online", "uma to notice");
    const offline = ["written offline 1", "written offline 2", "written offline 3"];
    for (const t of offline) await uma.send(t);
    await until(async () => (await uma.page.locator('.msg.pending[data-mark="sending"]').count()) === 3, "three sending lines");
    const ids = await uma.page.$$eval(".msg.pending", (els) => els.map((e) => e.getAttribute("data-client-msg-id")));
    // The page goes away while the server is down (the reload finds no server).
    await uma.page.reload().catch(() => {});
    await chatd.start();
    await uma.page.goto(chatd.webUrl);
    await uma.page.locator('#status[data-state="online"]').waitFor({ timeout: 30_000 });
    await vic.page.locator('#status[data-state="online"]').waitFor({ timeout: 30_000 });
    for (const t of offline) await vic.waitForMessage(t, 30_000);
    await uma.open("Vic");
    await until(async () => (await uma.page.locator(".msg.pending").count()) === 0, "uma's unsent lines to go");
    // Once each, in order, with the client_msg_ids they were written with.
    await sleep(1500);
    const expected = ["before the outage", ...offline];
    assert.deepEqual(await vic.messages(), expected);
    assert.deepEqual(await uma.messages(), expected);
    const got = await vic.page.$$eval(".msg[data-seq]", (els) => els.map((e) => e.getAttribute("data-seq")));
    assert.deepEqual(got, ["1", "2", "3", "4"]);
    const history = await uma.page.evaluate(async () => {
      const app = globalThis.chatApp;
      const [id] = [...app.conversations.keys()];
      const page = await app.client.history(BigInt(id), { limit: 10 });
      return page.messages.map((m) => m.clientMsgId);
    });
    assert.deepEqual(history.slice(1), ids);
    // A second reload sends nothing again.
    await uma.page.reload();
    await uma.page.locator('#status[data-state="online"]').waitFor();
    await sleep(1500);
    assert.deepEqual(await vic.messages(), expected);
  } finally {
    await uma.close();
    await vic.close();
    await chatd.dispose();
  }
});
