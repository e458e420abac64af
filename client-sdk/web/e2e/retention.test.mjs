// Retention in the web app (issue 16): the conversation header says how
// long the conversation keeps its messages (the server's default for a new
// one) and whether a legal hold covers it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BrowserUser, chatdForFile } from "./harness.mjs";

const ctx = chatdForFile();

test("the header shows the conversation's retention", { timeout: 120_000 }, async () => {
  const { chatd, users } = ctx;
  const a = await BrowserUser.open("ria");
  const sol = await BrowserUser.open("sol");
  users.push(a, sol);
  await a.signIn(chatd, chatd.token("ria", "advocate", "Ria Advocate"));
  // Sol is in the directory once he has signed in.
  await sol.signIn(chatd, chatd.token("sol", "client", "Sol Client"));
  await a.createPrivate("sol");
  const retention = a.page.locator("#chat-retention");
  await retention.filter({ hasText: "kept 365 days" }).waitFor();
  assert.match(await retention.textContent(), /kept 365 days/);
  assert.doesNotMatch(await retention.textContent(), /legal hold/);
});
