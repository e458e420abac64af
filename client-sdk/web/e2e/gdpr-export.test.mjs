// The GDPR export in the web app (issue 16), over WebTransport and again over
// the WebSocket fallback (a chat.mux.v1 stream): a client clicks "Download
// my data" and saves one tar archive holding exactly his messages and a
// manifest whose SHA-256s match its files; the status says what it holds.
// A system admin exports another user's data from the Compliance screen;
// an unknown user is refused with the server's reason.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { BrowserUser, chatdForFile, NO_WEBTRANSPORT } from "./harness.mjs";

const ctx = chatdForFile();

/** The files of a ustar/GNU tar archive: name → bytes, in order. */
function untar(buf) {
  const files = new Map();
  for (let at = 0; at + 512 <= buf.length; ) {
    const head = buf.subarray(at, at + 512);
    if (head.every((b) => b === 0)) break;
    const name = head.subarray(0, 100).toString("utf8").replace(/\0.*$/s, "");
    const size = Number.parseInt(head.subarray(124, 136).toString("ascii").replace(/\0.*$/s, "").trim(), 8);
    files.set(name, buf.subarray(at + 512, at + 512 + size));
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** Checks the manifest against the archive's files; the manifest. */
function checkManifest(files, user) {
  const manifest = JSON.parse(files.get("manifest.json").toString("utf8"));
  assert.equal(manifest.user_id, user);
  assert.equal(manifest.files.length, files.size - 1, "every file but the manifest is listed");
  for (const f of manifest.files) {
    const bytes = files.get(f.path);
    assert.ok(bytes, `${f.path} is in the archive`);
    assert.equal(bytes.length, f.bytes, f.path);
    assert.equal(createHash("sha256").update(bytes).digest("hex"), f.sha256, f.path);
  }
  return manifest;
}

const lines = (b) => b.toString("utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));

async function ownExport(suffix, initScript, transport) {
  const { chatd, users } = ctx;
  const ann = await BrowserUser.open(`ann-x${suffix}`);
  const ben = await BrowserUser.open(`ben-x${suffix}`, { initScript });
  users.push(ann, ben);
  await ann.signIn(chatd, chatd.token(`ann-x${suffix}`, "advocate", "Ann Advocate"));
  await ben.signIn(chatd, chatd.token(`ben-x${suffix}`, "client", "Ben Client"));
  assert.equal(await ben.transport(), transport);
  await ann.createPrivate(`ben-x${suffix}`);
  await ann.send("Please send the lease");
  await ben.page.locator(".conv").first().click();
  await ben.waitForMessage("Please send the lease");
  await ben.send("Here is my answer about the lease");
  await ben.waitForMessage("Here is my answer about the lease");

  const [download] = await Promise.all([ben.page.waitForEvent("download"), ben.page.click("#export-mine")]);
  assert.match(download.suggestedFilename(), new RegExp(`^chat-data-ben-x${suffix}-\\d{4}-\\d{2}-\\d{2}\\.tar$`));
  const files = untar(readFileSync(await download.path()));
  checkManifest(files, `ben-x${suffix}`);
  const texts = lines(files.get("messages.jsonl")).map((m) => m.body?.text);
  assert.deepEqual(texts, ["Here is my answer about the lease"], "exactly his messages, never Ann's");
  await ben.page
    .locator("#export-mine-status", { hasText: `Saved the data of ben-x${suffix}: 1 conversation, 1 message, 0 files` })
    .waitFor();
}

test("a client downloads his own data from the app over WebTransport", { timeout: 120_000 }, async () => {
  await ownExport("wt", undefined, "webtransport");
});

test("a client downloads his own data from the app over the WebSocket fallback", { timeout: 120_000 }, async () => {
  await ownExport("ws", NO_WEBTRANSPORT, "websocket");
});

test("an admin exports another user's data from the Compliance screen; an unknown user is refused", { timeout: 120_000 }, async () => {
  const { chatd, users } = ctx;
  const cat = await BrowserUser.open("cat-x");
  const ida = await BrowserUser.open("ida-x");
  users.push(cat, ida);
  await cat.signIn(chatd, chatd.token("cat-x", "client", "Cat Client"));
  await ida.signIn(chatd, chatd.token("ida-x", "admin", "Ida Admin"));
  await cat.createPrivate("ida-x");
  await cat.send("My statement for the file");
  await cat.waitForMessage("My statement for the file");

  await ida.page.click("#compliance-button");
  await ida.page.fill("#export-user", "nobody-x");
  await ida.page.click("#export-run");
  await ida.page.locator("#compliance-error", { hasText: "not in the user directory: nobody-x" }).waitFor();

  await ida.page.fill("#export-user", "cat-x");
  const [download] = await Promise.all([ida.page.waitForEvent("download"), ida.page.click("#export-run")]);
  const files = untar(readFileSync(await download.path()));
  checkManifest(files, "cat-x");
  assert.deepEqual(lines(files.get("messages.jsonl")).map((m) => m.body?.text), ["My statement for the file"]);
  await ida.page.locator("#compliance-status", { hasText: "Saved the data of cat-x: 1 conversation, 1 message" }).waitFor();
  assert.equal(await ida.page.locator("#compliance-error").count(), 0, "the earlier refusal is cleared");
});
