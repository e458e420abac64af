// Two browser users chat both ways over WebTransport; typing, presence,
// unread badges and read marks show up; hostile input is shown as text.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { artifactPath, BrowserUser, Chatd, until } from "./harness.mjs";

let chatd;
const users = [];

before(async () => {
  chatd = await new Chatd().start();
});

after(async () => {
  for (const u of users) await u.close();
  await chatd?.dispose();
});

test("two browser users chat both ways, with typing, presence, badges and read marks", { timeout: 120_000 }, async () => {
  const alice = await BrowserUser.open("alice");
  const bob = await BrowserUser.open("bob");
  users.push(alice, bob);
  await alice.signIn(chatd, chatd.token("alice", "advocate", "Alice Advocate"));
  await bob.signIn(chatd, chatd.token("bob", "client", "Bob Client"));
  assert.equal(await alice.transport(), "webtransport");
  assert.equal(await bob.transport(), "webtransport");

  await alice.createPrivate("bob");
  await alice.page.locator("#chat-title", { hasText: "Bob Client" }).waitFor();
  // Bob has not answered yet: a private conversation does not reveal whether
  // he is online until he reads or writes in it.
  assert.equal(await alice.page.locator('#chat-header .dot.online[data-presence="bob"]').count(), 0);

  await alice.send("Hello Bob, the **hearing** is moved to *Monday*.");
  // The conversation shows up in Bob's list with an unread badge and the last message.
  const bobItem = bob.page.locator('.conv[data-title="Alice Advocate"]');
  await bobItem.locator(".badge", { hasText: "1" }).waitFor();
  await bobItem.locator(".conv-last", { hasText: "Alice Advocate: Hello Bob, the hearing is moved to Monday." }).waitFor();
  await alice.send("Please bring the signed `engagement letter`.");
  await bobItem.locator(".badge", { hasText: "2" }).waitFor();

  // Bob's device has them (his badge says 2), but he has not accepted the
  // conversation: Alice is not told that his device received them (it would
  // tell her he is online). Receipts are pushed every 0.5 s: wait past that.
  await until(async () => (await alice.page.locator('.msg.mine[data-mark="sent"]').count()) === 2, "sent marks");
  await new Promise((r) => setTimeout(r, 1_500));
  assert.equal(await alice.page.locator('.msg.mine[data-mark="delivered"]').count(), 0, "no delivered marks yet");

  await bob.open("Alice Advocate");
  await bob.waitForMessage("Please bring the signed");
  assert.deepEqual(await bob.messages(), [
    "Hello Bob, the hearing is moved to Monday.",
    "Please bring the signed engagement letter.",
  ]);
  assert.equal(await bob.page.locator(".msg strong", { hasText: "hearing" }).count(), 1, "bold rendered");
  assert.equal(await bob.page.locator(".msg code", { hasText: "engagement letter" }).count(), 1, "code rendered");
  assert.equal(await bobItem.locator(".badge").count(), 0, "badge cleared once read");
  // Bob opened it: Alice sees both messages read, and that he is online.
  await until(async () => (await alice.page.locator('.msg.mine[data-mark="read"]').count()) === 2, "read marks");
  await alice.page.locator('#chat-header .dot.online[data-presence="bob"]').waitFor();

  // Typing: Bob types, Alice sees it; it goes away when he sends.
  await bob.page.fill("#composer-input", "I will");
  await bob.page.type("#composer-input", " be there");
  await alice.page.locator("#typing", { hasText: "Bob Client is typing…" }).waitFor();
  await bob.page.press("#composer-input", "Enter");
  await alice.waitForMessage("I will be there");
  await until(async () => (await alice.page.locator("#typing").textContent()) === "", "typing indicator to clear");
  assert.deepEqual(await alice.messages(), [
    "Hello Bob, the hearing is moved to Monday.",
    "Please bring the signed engagement letter.",
    "I will be there",
  ]);
  await bob.waitForMessage("I will be there"); // his own copy, once acknowledged
  assert.deepEqual(await bob.messages(), await alice.messages(), "both see the same conversation");

  await alice.page.screenshot({ path: artifactPath("two-users-alice.png") });

  // Presence: Bob leaves, Alice sees him go offline. A closed browser may send
  // no goodbye: the server pings idle peers and notices within 5 s.
  await bob.close();
  users.splice(users.indexOf(bob), 1);
  await alice.page.locator('#chat-header .dot.offline[data-presence="bob"]').waitFor({ timeout: 8_000 });
});

const HOSTILE = [
  '<img src=x onerror="window.__pwned=1;alert(1)">',
  "<script>window.__pwned=1;alert(2)</script>",
  '<a href="javascript:window.__pwned=1">click me</a>',
  "[the docket](javascript:window.__pwned=1)",
  "[data](data:text/html,<script>alert(3)</script>)",
  "javascript:alert(4)",
  '<svg onload="window.__pwned=1"></svg><iframe src="javascript:alert(5)"></iframe>',
  '"><style>body{display:none}</style><b onmouseover=alert(6)>bold?</b>',
  "**<img src=x onerror=alert(7)>** and [ok link](https://example.com/case?id=1)",
];

test("hostile input is shown as text and runs nothing", { timeout: 120_000 }, async () => {
  const mallory = await BrowserUser.open("mallory");
  const victim = await BrowserUser.open("victim");
  users.push(mallory, victim);
  await mallory.signIn(chatd, chatd.token("mallory", "advocate", "<img src=x onerror=alert(8)>Mallory"));
  await victim.signIn(chatd, chatd.token("victim", "client", "Victim"));
  await mallory.createPrivate("victim");
  for (const h of HOSTILE) await mallory.send(h);
  await mallory.waitForMessage("ok link");

  await victim.page.locator(".conv").first().click();
  await victim.waitForMessage("ok link");
  const shown = await victim.messages();
  assert.equal(shown.length, HOSTILE.length);
  // Every string is shown as typed (markup syntax of the Markdown subset aside).
  for (const [i, h] of HOSTILE.entries()) {
    const expected = h.replace(/\*\*(.*?)\*\*/g, "$1").replace(/\[(ok link)\]\([^)]*\)/, "$1");
    assert.equal(shown[i], expected, `message ${i} shown as text`);
  }
  for (const u of [victim, mallory]) {
    const page = u.page;
    assert.equal(await page.locator(".msg img, .msg script, .msg iframe, .msg svg, .msg style, .msg b").count(), 0);
    const hrefs = await page.$$eval(".msg a", (as) => as.map((a) => a.getAttribute("href")));
    assert.deepEqual(hrefs, ["https://example.com/case?id=1"]);
    assert.equal(await page.locator(".msg a").first().getAttribute("rel"), "noopener noreferrer nofollow");
    // Clicking the unsafe "links" does nothing either.
    await page.locator(".msg .body", { hasText: "click me" }).click();
    assert.equal(await page.evaluate(() => window.__pwned), undefined, "no script ran");
    assert.deepEqual(u.dialogs, [], "no dialog opened");
    assert.equal(await page.locator("body").isVisible(), true);
  }
  // The display name from the token is text too.
  await victim.page.locator("#chat-title", { hasText: "<img src=x onerror=alert(8)>Mallory" }).waitFor();
  await victim.page.screenshot({ path: artifactPath("hostile-input.png") });
});

test("group, case and support conversations are created from the app; staff picks up support", { timeout: 120_000 }, async () => {
  const lena = await BrowserUser.open("lena");
  const max = await BrowserUser.open("max");
  const staff = await BrowserUser.open("staff");
  users.push(lena, max, staff);
  await lena.signIn(chatd, chatd.token("lena", "advocate", "Lena Lawyer"));
  await max.signIn(chatd, chatd.token("max", "client", "Max Client"));
  await staff.signIn(chatd, chatd.token("sam", "admin", "Sam Staff"));

  // A group with two members.
  await lena.page.click("#new-conv");
  await lena.page.selectOption("#new-kind", "group");
  await lena.page.fill("#new-title", "Tenants' association");
  await lena.page.fill("#new-members", "max, sam");
  await lena.page.click("#create");
  await lena.page.locator("#chat-title", { hasText: "Tenants' association" }).waitFor();
  await lena.send("Welcome to the group");
  await max.page.locator('.conv[data-title="Tenants\' association"] .badge', { hasText: "1" }).waitFor();
  await staff.page.locator('.conv[data-title="Tenants\' association"]').waitFor();

  // A case conversation, listed under its case id.
  await lena.page.click("#new-conv");
  await lena.page.selectOption("#new-kind", "case");
  await lena.page.fill("#new-case", "2026-CV-0113");
  await lena.page.fill("#new-title", "Eviction defence");
  await lena.page.fill("#new-members", "max");
  await lena.page.click("#create");
  await lena.page.locator("#chat-title", { hasText: "Eviction defence · 2026-CV-0113" }).waitFor();
  await max.page.locator('.conv[data-title="Eviction defence · 2026-CV-0113"]').waitFor();

  // A client may not create a group: the server's refusal is shown.
  await max.page.click("#new-conv");
  await max.page.selectOption("#new-kind", "group");
  await max.page.fill("#new-title", "Not allowed");
  await max.page.fill("#new-members", "lena");
  await max.page.click("#create");
  await max.page.locator(".dialog .error", { hasText: "FORBIDDEN" }).waitFor();
  await max.page.click(".dialog button[type=button]");

  // The client opens a support request; staff sees it in the queue and picks it up.
  await max.page.click("#new-conv");
  await max.page.selectOption("#new-kind", "support");
  await max.page.fill("#new-title", "Cannot open the lease PDF");
  await max.page.click("#create");
  await max.page.locator(".chat-sub", { hasText: "waiting for staff" }).waitFor();
  await max.send("Hello, I need help with the portal.");
  await staff.page.locator(".queue-item", { hasText: "Cannot open the lease PDF" }).waitFor();
  await staff.page.locator(".queue-item button", { hasText: "Pick up" }).click();
  await staff.page.locator("#chat-title", { hasText: "Cannot open the lease PDF" }).waitFor();
  await staff.waitForMessage("Hello, I need help with the portal.");
  await staff.send("Hi Max, I am on it.");
  await max.waitForMessage("Hi Max, I am on it.");
  await max.page.locator(".chat-sub", { hasText: "assigned" }).waitFor();
  assert.equal(await staff.page.locator(".queue-item").count(), 0, "the queue is empty once picked up");
  await staff.page.screenshot({ path: artifactPath("support.png") });
});

test("sign-in: the token leaves the address bar; a forged token is refused with the server's reason", { timeout: 60_000 }, async () => {
  const u = await BrowserUser.open("forger");
  users.push(u);
  const good = chatd.token("nina", "client", "Nina");
  await u.signIn(chatd, good);
  assert.equal(new URL(u.page.url()).hash, "", "the fragment is cleared");
  await u.page.click("#sign-out");
  await u.page.locator("form.signin").waitFor();
  // Flip a character of the signature: a forged token.
  const forged = good.slice(0, -2) + (good.at(-2) === "A" ? "B" : "A") + good.at(-1);
  await u.page.fill("#token", forged);
  await u.page.click("form.signin button[type=submit]");
  await u.page.locator("form.signin .error", { hasText: "UNAUTHENTICATED" }).waitFor({ timeout: 20_000 });
  // A pasted good token signs in.
  await u.page.fill("#token", good);
  await u.page.click("form.signin button[type=submit]");
  await u.page.locator('#status[data-state="online"]').waitFor();
  await u.page.locator("#me-name", { hasText: "Nina" }).waitFor();
});
