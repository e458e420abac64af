// The people picker: in the New conversation dialog a user types part of a
// name, picks the person the user directory offers, and the conversation is
// made with their id; a typed id that is not in the directory is refused
// with the server's reason, and nothing is made.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BrowserUser, chatdForFile } from "./harness.mjs";

const ctx = chatdForFile();

test("the New conversation dialog offers people by name and refuses an unknown id", { timeout: 120_000 }, async () => {
  const { chatd } = ctx;
  const lena = await BrowserUser.open("lena-people");
  const max = await BrowserUser.open("max-people");
  ctx.users.push(lena, max);
  await max.signIn(chatd, chatd.token("maxwell-p", "client", "Maxwell Client"));
  await lena.signIn(chatd, chatd.token("lena-p", "advocate", "Lena Lawyer"));
  const page = lena.page;

  // A typo is refused with the server's reason, naming the id.
  await page.click("#new-conv");
  await page.selectOption("#new-kind", "private");
  await page.fill("#new-members", "maxwel-p");
  await page.click("#create");
  await page.locator(".dialog .error", { hasText: "not in the user directory: maxwel-p" }).waitFor();

  // Part of the name offers the person; picking them puts their id in.
  await page.fill("#new-members", "");
  await page.locator("#new-members").pressSequentially("maxw");
  const person = page.locator(".person", { hasText: "Maxwell Client" });
  await person.waitFor();
  assert.equal(await page.locator(".person").count(), 1, "only the match is offered");
  await person.click();
  assert.equal(await page.inputValue("#new-members"), "maxwell-p, ");
  await page.click("#create");
  await page.locator("#chat-title").waitFor();
  await lena.send("Hello from the picker");
  await max.page.locator(".conv").first().click();
  await max.waitForMessage("Hello from the picker");
});
