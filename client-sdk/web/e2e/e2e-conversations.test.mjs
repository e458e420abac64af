// End-to-end encrypted conversations between the web app (ts-mls in the
// browser) and the Rust SDK (openmls, through the jsonl example's MLS
// device), over WebTransport and over the WebSocket fallback: each creates a
// group with the other, both ways of messages decrypt, the safety numbers
// agree on both sides, files go both ways sealed, the browser's device
// survives a reload (keys and decrypted history in IndexedDB), a member the
// web app removes reads nothing sent after, a device added later joins from
// then on, and offline the saved history shows what the browser decrypted.
// A plain conversation beside it stays plain.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { axeViolations, BrowserUser, chatdForFile, NO_WEBTRANSPORT, RustUser, savedView, until } from "./harness.mjs";

const ctx = chatdForFile();

/** Signs in and waits until the browser's MLS device published its KeyPackages. */
async function signInE2e(name, display, opts = {}, user = name) {
  const u = await BrowserUser.open(name, opts);
  ctx.users.push(u);
  await u.signIn(ctx.chatd, ctx.chatd.token(user, "advocate", display));
  await u.page.locator('#status[data-e2e="ready"]').waitFor({ timeout: 30_000 });
  return u;
}

/** The decrypted messages the Rust user's device saw in `conv`. */
function decrypted(rust, conv) {
  return rust.events.filter((e) => e.event === "e2e" && e.conv === conv);
}

/** Both sides show the same safety number for every device of the group. */
async function sameSafetyNumbers(web, rust, conv) {
  await web.page.click("#safety-button");
  await web.page.locator("#safety-dialog .safety-row").first().waitFor();
  const shown = await web.page.$$eval("#safety-dialog .safety-row", (rows) =>
    rows.map((r) => `${r.dataset.user}/${r.dataset.device} ${r.querySelector(".safety-number")?.textContent}`).sort(),
  );
  const told = (await rust.call({ cmd: "e2e-safety", conv })).numbers.map((n) => `${n.user}/${n.device} ${n.number}`).sort();
  assert.deepEqual(shown, told, "the browser and the Rust SDK show the same safety numbers");
  assert.equal(shown.length, 2);
  assert.deepEqual(await axeViolations(web.page), [], "the safety numbers dialog passes axe-core");
  await web.page.keyboard.press("Escape");
  await web.page.locator("#safety-dialog").waitFor({ state: "detached" });
}

test("a web user and a Rust SDK user chat end-to-end encrypted over WebTransport, both ways", { timeout: 180_000 }, async () => {
  const erin = await signInE2e("erin", "Erin Web");
  assert.equal(await erin.transport(), "webtransport");
  const ravi = await RustUser.start(ctx.chatd, ctx.chatd.token("ravi", "advocate", "Ravi Rust"));
  ctx.users.push(ravi);

  // The Rust user makes the group; the browser joins from its Welcome.
  const { conv } = await ravi.call({ cmd: "e2e-create", title: "Privileged matter", users: ["erin"] });
  await ravi.call({ cmd: "e2e-send", conv, text: "Privileged hello from Rust" });
  await ravi.call({ cmd: "group", title: "Plain matter", users: ["erin"] });
  await erin.open("Privileged matter");
  await erin.page.locator("#chat-e2e", { hasText: "end-to-end encrypted" }).waitFor();
  await erin.waitForMessage("Privileged hello from Rust");
  await erin.send("Privileged reply from the web");
  const reply = await until(() => decrypted(ravi, conv).find((e) => e.text === "Privileged reply from the web"), "ravi to decrypt erin's reply");
  assert.equal(reply.sender, "erin");
  assert.match(reply.device, /^web-[0-9a-f]{12}$/);
  await erin.waitForMessage("Privileged reply from the web");
  assert.equal(await erin.page.locator("#composer-input").inputValue(), "", "the box empties once stored");
  await sameSafetyNumbers(erin, ravi, conv);

  // Files: sealed on the sending device under their own key, opened (and checked) on the other.
  await ravi.call({ cmd: "e2e-send-file", conv, text: "The brief", name: "brief.txt", media_type: "text/plain", content: "Privileged brief contents" });
  const chip = erin.page.locator('.file-chip[data-name="brief.txt"]');
  await chip.waitFor();
  const [dl] = await Promise.all([erin.page.waitForEvent("download"), chip.click()]);
  assert.equal(dl.suggestedFilename(), "brief.txt");
  assert.equal(readFileSync(await dl.path(), "utf8"), "Privileged brief contents");
  await erin.page.setInputFiles("#attach-input", [{ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("Counsel's private notes") }]);
  await until(() => decrypted(ravi, conv).find((e) => e.files.includes("notes.txt")), "ravi to receive erin's file");
  assert.equal((await ravi.call({ cmd: "e2e-download", conv, name: "notes.txt" })).content, "Counsel's private notes");
  await erin.page.locator('.file-chip[data-name="notes.txt"]').waitFor();

  // A reload keeps the device (its keys) and what it decrypted; what comes next decrypts too.
  await erin.page.reload();
  await erin.page.locator('#status[data-e2e="ready"]').waitFor({ timeout: 30_000 });
  await erin.open("Privileged matter");
  await erin.waitForMessage("Privileged hello from Rust");
  await erin.waitForMessage("Privileged reply from the web");
  await ravi.call({ cmd: "e2e-send", conv, text: "After your reload" });
  await erin.waitForMessage("After your reload");
  // The preview in the list is decrypted too; commits are not shown.
  await erin.page.locator(`.conv[data-title="Privileged matter"]`, { hasText: "After your reload" }).waitFor();
  assert.equal(await erin.page.locator(".msg .body", { hasText: "Encrypted message" }).count(), 0);

  // The plain conversation beside it stays plain.
  await erin.open("Plain matter");
  assert.equal(await erin.page.locator("#chat-e2e").count(), 0, "a plain conversation is not marked");
  assert.equal(await erin.page.locator("#safety-button").count(), 0);

  // The browser makes a group with the checkbox; the Rust device joins from its Welcome.
  await erin.page.click("#new-conv");
  await erin.page.selectOption("#new-kind", "group");
  await erin.page.fill("#new-title", "Web-made matter");
  await erin.page.fill("#new-members", "ravi");
  await erin.page.check("#new-e2e");
  await erin.page.click("#create");
  await erin.page.locator("#create").waitFor({ state: "detached" });
  await erin.page.locator("#chat-title", { hasText: "Web-made matter" }).waitFor();
  await erin.page.locator("#chat-e2e").waitFor();
  const joined = await until(() => ravi.events.find((e) => e.event === "e2e-joined"), "ravi's device to join erin's group");
  const webConv = joined.conv;
  await erin.send("Opened from the browser");
  await until(() => decrypted(ravi, webConv).find((e) => e.text === "Opened from the browser"), "ravi to read the browser's group");
  await ravi.call({ cmd: "e2e-send", conv: webConv, text: "Read you, from Rust" });
  await erin.waitForMessage("Read you, from Rust");
  await sameSafetyNumbers(erin, ravi, webConv);

  // erin removes ravi: his device is out of the group and reads nothing after.
  await erin.page.click("#manage-button");
  await erin.page.click('#manage-dialog .member-row[data-user="ravi"] button[aria-label="Remove ravi"], #manage-dialog .member-row[data-user="ravi"] button[aria-label^="Remove"]');
  await erin.page.locator('#manage-dialog .member-row[data-user="ravi"]').waitFor({ state: "detached" });
  await erin.page.keyboard.press("Escape");
  // The removal commit is sequenced (erin's group moved on) before she writes again.
  await erin.send("Not for ravi");
  await erin.waitForMessage("Not for ravi");
  await assert.rejects(ravi.call({ cmd: "e2e-send", conv: webConv, text: "Still here?" }), /NOT_MEMBER|not a member/i);
  await ravi.call({ cmd: "e2e-send", conv, text: "The first matter goes on" });
  await erin.open("Privileged matter");
  await erin.waitForMessage("The first matter goes on");
  assert.equal(decrypted(ravi, webConv).find((e) => e.text === "Not for ravi"), undefined, "a removed member reads nothing after");
  assert.deepEqual(
    erin.console.filter((l) => l.startsWith("pageerror")),
    [],
    "no page errors",
  );
});

test("the same over the WebSocket fallback, with a Rust user on WebTransport", { timeout: 120_000 }, async () => {
  const gina = await signInE2e("gina", "Gina Fallback", { initScript: NO_WEBTRANSPORT });
  assert.equal(await gina.transport(), "websocket");
  const omar = await RustUser.start(ctx.chatd, ctx.chatd.token("omar", "advocate", "Omar Rust"), { webtransport: true });
  ctx.users.push(omar);
  const { conv } = await omar.call({ cmd: "e2e-create", title: "Fallback matter", users: ["gina"] });
  await omar.call({ cmd: "e2e-send", conv, text: "Encrypted over the fallback" });
  await gina.open("Fallback matter");
  await gina.waitForMessage("Encrypted over the fallback");
  await gina.send("Answered over WebSocket");
  const got = await until(() => decrypted(omar, conv).find((e) => e.text === "Answered over WebSocket"), "omar to decrypt gina's answer");
  assert.equal(got.sender, "gina");
  await sameSafetyNumbers(gina, omar, conv);

  // Offline (chatd stopped), the saved history shows what this browser decrypted, read-only.
  await gina.page.waitForFunction(() => navigator.serviceWorker.controller?.scriptURL.endsWith("/sw.js"), null, { timeout: 20_000 });
  await until(async () => (await savedView(gina.page, "gina"))?.messages.some((n) => n >= 3), "gina's history saved");
  await ctx.chatd.stop();
  try {
    await gina.page.reload();
    await gina.page.locator("#offline-banner").waitFor({ timeout: 20_000 });
    await gina.open("Fallback matter");
    await gina.waitForMessage("Encrypted over the fallback");
    await gina.waitForMessage("Answered over WebSocket");
    assert.match(await gina.page.locator("#e2e-note").textContent(), /writing needs the connection/);
  } finally {
    await ctx.chatd.start();
  }
});

test("a user's new device joins as its own leaf, added by their other device, and reads from then on", { timeout: 90_000 }, async () => {
  const rita = await RustUser.start(ctx.chatd, ctx.chatd.token("rita", "advocate", "Rita Rust"));
  ctx.users.push(rita);
  const hugo = await signInE2e("hugo", "Hugo Web");
  const { conv } = await rita.call({ cmd: "e2e-create", title: "Hugo's matter", users: ["hugo"] });
  await rita.call({ cmd: "e2e-send", conv, text: "Before the second device" });
  await hugo.open("Hugo's matter");
  await hugo.waitForMessage("Before the second device");

  // hugo signs in on a second browser: a new device, not in the group yet.
  const laptop = await signInE2e("hugo-laptop", "Hugo Web", {}, "hugo");
  await laptop.open("Hugo's matter");
  assert.match(await laptop.page.locator("#e2e-note").textContent(), /not in the conversation's group yet/);
  assert.equal(await laptop.page.locator("#composer-input").count(), 0, "no composer: the server would refuse plaintext");
  assert.equal(await laptop.page.locator(".msg .body", { hasText: "Encrypted message" }).count(), 1, "history from before it joined stays sealed");

  // hugo's first browser, opening the conversation again (after a reload),
  // adds the device the group lacks by itself: the laptop joins and writes.
  await hugo.page.reload();
  await hugo.page.locator('#status[data-e2e="ready"]').waitFor({ timeout: 30_000 });
  await hugo.open("Hugo's matter");
  await laptop.page.locator("#composer-input").waitFor();
  await laptop.send("From my second device");
  const got = await until(() => decrypted(rita, conv).find((e) => e.text === "From my second device"), "rita to read hugo's laptop");
  assert.equal(got.sender, "hugo");
  await hugo.waitForMessage("From my second device");
  await rita.call({ cmd: "e2e-send", conv, text: "Both of hugo's devices read this" });
  await hugo.waitForMessage("Both of hugo's devices read this");
  await laptop.waitForMessage("Both of hugo's devices read this");
  // Looking again finds nothing to add, and the claim took nothing of the devices in the group.
  assert.equal((await rita.call({ cmd: "e2e-new-devices", conv })).added, 0);
  const { conv: second } = await rita.call({ cmd: "e2e-create", title: "Hugo's second matter", users: ["hugo"] });
  await rita.call({ cmd: "e2e-send", conv: second, text: "Both devices were added at once" });
  await laptop.open("Hugo's second matter");
  await laptop.waitForMessage("Both devices were added at once");
  await hugo.open("Hugo's second matter");
  await hugo.waitForMessage("Both devices were added at once");
});
