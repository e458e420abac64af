// The server API seen in the web app (issue 17): a service account made with
// `chatd service-accounts create` creates a case conversation for Ria and
// posts a system message into it through /api/v1; Ria's app shows the
// message apart from people's messages, with the integration's name, and
// links the case id to the case-management system the server names.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { BrowserUser, CHATD_BIN, chatdForFile } from "./harness.mjs";

const ctx = chatdForFile({ CHAT_API__CASE_LINK: "https://cms.example/matters/{case_id}" });

test("a case conversation made through the API, with a system message and a case link", { timeout: 120_000 }, async () => {
  const { chatd, users } = ctx;
  const out = execFileSync(
    CHATD_BIN,
    ["service-accounts", "create", "--id", "cms", "--name", "Case system", "--scopes", "read,write"],
    { env: chatd.env() },
  ).toString();
  const credential = out.split("\n").find((l) => l.startsWith("chatd_sa_cms_"));
  assert.ok(credential, out);
  const api = async (method, path, body) => {
    const r = await fetch(`${chatd.webUrl}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${credential}`, "content-type": "application/json" },
      body: body && JSON.stringify(body),
    });
    return { status: r.status, json: await r.json() };
  };

  const ria = await BrowserUser.open("ria-api");
  users.push(ria);
  await ria.signIn(chatd, chatd.token("ria-api", "advocate", "Ria Advocate"));
  const made = await api("POST", "/cases/2024-CV-7/conversations", { title: "Adler v. Brandt", members: ["ria-api"] });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const conv = made.json.conversation.id;

  await ria.page.locator(`.conv[data-title*="Adler v. Brandt"]`).first().click();
  const link = ria.page.locator("#chat-case a");
  await link.waitFor();
  assert.equal(await link.getAttribute("href"), "https://cms.example/matters/2024-CV-7");
  assert.equal(await link.textContent(), "2024-CV-7");

  const posted = await api("POST", `/conversations/${conv}/messages`, { client_msg_id: "h-1", text: "Hearing moved to 14 May" });
  assert.equal(posted.status, 201, JSON.stringify(posted.json));
  const line = ria.page.locator(".system", { hasText: "Hearing moved to 14 May" });
  await line.waitFor();
  assert.equal(await line.locator(".system-from").textContent(), "cms");
  assert.equal(await ria.page.locator(".msg .body", { hasText: "Hearing moved" }).count(), 0, "not shown as a person's message");
  // Ria's own message goes next to it as usual.
  await ria.send("Noted, I will tell the client");
  await ria.waitForMessage("Noted, I will tell the client");
});

test("an admin creates, rotates and revokes a service account on the Integrations screen", { timeout: 120_000 }, async () => {
  const { chatd, users } = ctx;
  const ida = await BrowserUser.open("ida-integrations");
  const ria = await BrowserUser.open("ria-integrations");
  users.push(ida, ria);
  await ria.signIn(chatd, chatd.token("ria-integrations", "advocate", "Ria Advocate"));
  assert.equal(await ria.page.locator("#integrations-button").count(), 0, "not for people who are not admins");
  await ida.signIn(chatd, chatd.token("ida-integrations", "admin", "Ida Admin"));
  const page = ida.page;
  await page.click("#integrations-button");
  await page.locator("#integrations-title").waitFor();
  await page.fill("#account-id", "dms");
  await page.fill("#account-name", "Document system");
  await page.uncheck("#scope-write");
  await page.click("#account-create");
  const field = page.locator("#credential");
  await field.waitFor();
  const first = await field.inputValue();
  assert.match(first, /^chatd_sa_dms_[0-9a-f]{64}$/);
  const row = page.locator('.account-row[data-id="dms"]');
  assert.match(await row.textContent(), /Document system.*read.*active/);
  const get = async (cred) =>
    (await fetch(`${chatd.webUrl}/api/v1/cases/C-1/conversations`, { headers: { authorization: `Bearer ${cred}` } })).status;
  assert.equal(await get(first), 200);

  await row.getByRole("button", { name: "Rotate the credential of dms" }).click();
  await page.click(".confirm-account");
  await page.locator("#integrations-status", { hasText: "no longer works" }).waitFor();
  const second = await field.inputValue();
  assert.notEqual(second, first);
  assert.equal(await get(first), 401, "the old credential stops at once");
  assert.equal(await get(second), 200);

  await row.getByRole("button", { name: "Revoke dms" }).click();
  await page.click(".confirm-account");
  await page.locator('.account-row[data-id="dms"][data-state="revoked"]').waitFor();
  assert.equal(await get(second), 401, "revoked");
  // A taken id is refused, and says so.
  await page.fill("#account-id", "dms");
  await page.fill("#account-name", "Again");
  await page.click("#account-create");
  await page.locator("#integrations-error", { hasText: "exists already" }).waitFor();
});
