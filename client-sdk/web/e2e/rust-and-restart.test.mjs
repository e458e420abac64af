// A browser user and a Rust SDK user chat with each other; a server restart
// in the middle of a conversation reconnects both browsers and loses nothing.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { artifactPath, BrowserUser, Chatd, RustUser, sleep, until } from "./harness.mjs";

let chatd;
const closers = [];

before(async () => {
  chatd = await new Chatd().start();
});

after(async () => {
  for (const c of closers.reverse()) await c();
  await chatd?.dispose();
});

test("a browser user and a Rust SDK user chat with each other", { timeout: 120_000 }, async () => {
  const carol = await BrowserUser.open("carol");
  closers.push(() => carol.close());
  await carol.signIn(chatd, chatd.token("carol", "advocate", "Carol Counsel"));
  const dave = await RustUser.start(chatd, chatd.token("dave", "client", "Dave Rust"));
  closers.push(() => dave.close());

  // The Rust user opens the conversation and writes first.
  const { conv } = await dave.call({ cmd: "private", user: "carol" });
  assert.ok(conv > 0);
  await dave.call({ cmd: "send", conv, text: "Hello from the **Rust** SDK" });
  const item = carol.page.locator('.conv[data-title="Dave Rust"]');
  await item.locator(".badge", { hasText: "1" }).waitFor();
  await item.click();
  await carol.waitForMessage("Hello from the Rust SDK");
  // Carol read it: the Rust user gets her read receipt.
  await until(() => dave.events.find((e) => e.event === "receipt" && e.user === "carol" && e.kind === "read" && e.seq >= 1), "carol's read receipt");

  // Typing from the Rust side shows in the browser.
  await dave.call({ cmd: "typing", conv, on: true });
  await carol.page.locator("#typing", { hasText: "Dave Rust is typing…" }).waitFor();

  // Carol answers; the Rust SDK surfaces it in order.
  await carol.send("Hi Dave, received. Two points:\n- the *deadline*\n- the fee");
  await until(() => dave.messages(conv).find((m) => m.sender === "carol"), "carol's message at the Rust user");
  const fromCarol = dave.messages(conv).find((m) => m.sender === "carol");
  assert.equal(fromCarol.text, "Hi Dave, received. Two points:\n- the *deadline*\n- the fee");
  // Dave's SDK delivered and he reads it: Carol's message shows read.
  await dave.call({ cmd: "read", conv, seq: fromCarol.seq });
  await carol.page.locator('.msg.mine[data-mark="read"]').waitFor();
  assert.equal(await carol.page.locator(".msg li").count(), 2, "list rendered");

  await dave.call({ cmd: "send", conv, text: "Thanks!" });
  await carol.waitForMessage("Thanks!");
  assert.deepEqual(await carol.messages(), [
    "Hello from the Rust SDK",
    "Hi Dave, received. Two points:the deadlinethe fee",
    "Thanks!",
  ]);
  // The Rust user's view: its own messages and Carol's, seqs 1..3 exactly once.
  const history = await dave.call({ cmd: "history", conv, limit: 50 });
  assert.deepEqual(history.messages.map((m) => m.seq), [1, 2, 3]);
});

test("a server restart mid-conversation reconnects and loses nothing", { timeout: 180_000 }, async () => {
  const erin = await BrowserUser.open("erin");
  const frank = await BrowserUser.open("frank");
  closers.push(() => erin.close(), () => frank.close());
  await erin.signIn(chatd, chatd.token("erin", "advocate", "Erin"));
  await frank.signIn(chatd, chatd.token("frank", "client", "Frank"));
  await erin.createPrivate("frank");
  await frank.page.locator('.conv[data-title="Erin"]').waitFor();
  await frank.open("Erin");

  const expected = [];
  for (let i = 1; i <= 3; i++) {
    await erin.send(`before restart ${i}`);
    expected.push(`before restart ${i}`);
  }
  await frank.send("frank before restart");
  expected.push("frank before restart");
  await erin.waitForMessage("frank before restart");
  // Frank wrote: Erin sees him online.
  await erin.page.locator('#chat-header .dot.online[data-presence="frank"]').waitFor();

  await chatd.stop();
  await until(async () => (await erin.page.locator("#status").getAttribute("data-state")) !== "online", "erin to notice");
  // Cut off, Erin's app no longer knows whether Frank is online: it says so.
  await erin.page.locator('#chat-header .dot.unknown[data-presence="frank"]').waitFor();
  // Written while the server is down: held in the outbox, shown as sending.
  await erin.send("sent while the server was down");
  expected.push("sent while the server was down");
  await erin.page.locator('.msg.pending[data-mark="sending"]').waitFor();
  await sleep(500);
  await chatd.start();

  await erin.page.locator('#status[data-state="online"]').waitFor({ timeout: 30_000 });
  await frank.page.locator('#status[data-state="online"]').waitFor({ timeout: 30_000 });
  await frank.waitForMessage("sent while the server was down", 30_000);
  await erin.page.locator('#chat-header .dot.online[data-presence="frank"]').waitFor();
  for (let i = 1; i <= 3; i++) {
    await frank.send(`after restart ${i}`);
    expected.push(`after restart ${i}`);
    await erin.waitForMessage(`after restart ${i}`);
  }
  await until(async () => (await erin.page.locator(".msg.pending").count()) === 0, "the outbox to drain");
  // Both see every message exactly once, in one order.
  assert.deepEqual(await erin.messages(), expected);
  await frank.waitForMessage("after restart 3"); // his own copy, once acknowledged
  assert.deepEqual(await frank.messages(), expected);
  const seqs = await frank.page.$$eval(".msg[data-seq]", (els) => els.map((e) => Number(e.getAttribute("data-seq"))));
  assert.deepEqual(seqs, expected.map((_, i) => i + 1));
  await frank.page.screenshot({ path: artifactPath("after-restart.png") });
});

test("history pages upward as the user scrolls", { timeout: 120_000 }, async () => {
  const olga = await BrowserUser.open("olga", { viewport: { width: 900, height: 600 } });
  closers.push(() => olga.close());
  const paul = await RustUser.start(chatd, chatd.token("paul", "advocate", "Paul Rust"));
  closers.push(() => paul.close());
  // Olga signed in once before (so she is in the user directory), elsewhere.
  await (await RustUser.start(chatd, chatd.token("olga", "client", "Olga"))).close();
  const { conv } = await paul.call({ cmd: "private", user: "olga" });
  const N = 130;
  for (let i = 1; i <= N; i++) await paul.call({ cmd: "send", conv, text: `line ${i}` });
  await olga.signIn(chatd, chatd.token("olga", "client", "Olga"));
  await olga.open("Paul Rust");
  await olga.waitForMessage(`line ${N}`);
  const first = await olga.messages();
  assert.ok(first.length < N, `only the newest page at first (${first.length})`);
  assert.equal(first.at(-1), `line ${N}`);
  // Scroll to the top until everything is there.
  await until(async () => {
    await olga.page.$eval("#messages", (el) => {
      el.scrollTop = 0;
      el.dispatchEvent(new Event("scroll"));
    });
    return (await olga.messages()).length === N;
  }, "every page", 30_000);
  assert.deepEqual(await olga.messages(), Array.from({ length: N }, (_, i) => `line ${i + 1}`));
});
