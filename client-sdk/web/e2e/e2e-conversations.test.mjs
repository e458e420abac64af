// An end-to-end encrypted conversation in the web app, which does not run
// MLS yet: a Rust SDK user makes one with a browser user; the app marks it
// as end-to-end encrypted and offers no composer there (the server would
// refuse plaintext), saying why.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BrowserUser, chatdForFile, RustUser } from "./harness.mjs";

const ctx = chatdForFile();

test("an E2E conversation is marked and offers no plaintext composer", { timeout: 90_000 }, async () => {
  const erin = await BrowserUser.open("erin");
  ctx.users.push(erin);
  await erin.signIn(ctx.chatd, ctx.chatd.token("erin", "advocate", "Erin Web"));
  const ravi = await RustUser.start(ctx.chatd, ctx.chatd.token("ravi", "advocate", "Ravi Rust"));
  ctx.users.push(ravi);
  await ravi.call({ cmd: "e2e-group", title: "Privileged matter", users: ["erin"] });
  await ravi.call({ cmd: "group", title: "Plain matter", users: ["erin"] });

  await erin.open("Privileged matter");
  await erin.page.locator("#chat-e2e", { hasText: "end-to-end encrypted" }).waitFor();
  assert.match(await erin.page.locator("#e2e-note").textContent(), /cannot read or write here yet/);
  assert.equal(await erin.page.locator("#composer-input").count(), 0, "no composer for plaintext");

  await erin.open("Plain matter");
  await erin.page.locator("#composer-input").waitFor();
  assert.equal(await erin.page.locator("#chat-e2e").count(), 0, "a plain conversation is not marked");
});
