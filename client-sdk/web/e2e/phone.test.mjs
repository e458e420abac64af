// The phone layout at 390 px (issue 15, item 3): a long last-message
// preview must not widen the list past the screen. On the list, the New
// dialog and the conversation, nothing sticks out of the viewport: every
// element's visible box (clipped by its scrolling/clipping ancestors) ends
// inside it, and the page does not scroll sideways.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { artifactPath, BrowserUser, Chatd } from "./harness.mjs";

let chatd;
const users = [];

before(async () => {
  chatd = await new Chatd().start();
});

after(async () => {
  for (const u of users) await u.close();
  await chatd?.dispose();
});

/** Elements whose visible part reaches outside the viewport, and the page's scroll width. */
function overflow(page) {
  return page.evaluate(() => {
    const vw = document.documentElement.clientWidth;
    const out = [];
    for (const el of document.querySelectorAll("body *")) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      let left = r.left;
      let right = r.right;
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        if (getComputedStyle(a).overflowX === "visible") continue;
        const ar = a.getBoundingClientRect();
        left = Math.max(left, ar.left);
        right = Math.min(right, ar.right);
      }
      if (right <= left) continue;
      if (right > vw + 0.5 || left < -0.5) {
        const id = el.id ? `#${el.id}` : "";
        const cls = typeof el.className === "string" && el.className ? `.${el.className.trim().split(/\s+/).join(".")}` : "";
        out.push(`${el.tagName.toLowerCase()}${id}${cls} [${Math.round(left)}, ${Math.round(right)}]`);
      }
    }
    const scrollWidth = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
    return { vw, scrollWidth, out: out.slice(0, 12) };
  });
}

/** A dialog's content fits its width: it does not scroll sideways inside. */
async function assertNoSideScroll(page, selector, where) {
  const [scroll, client] = await page.$eval(selector, (el) => [el.scrollWidth, el.clientWidth]);
  assert.ok(scroll <= client, `${where}: the dialog scrolls sideways (${scroll} px of content in ${client} px)`);
}

async function assertFits(page, where) {
  const o = await overflow(page);
  assert.equal(o.vw, 390, "the viewport is a phone's");
  assert.deepEqual(o.out, [], `${where}: elements outside the ${o.vw} px screen`);
  assert.ok(o.scrollWidth <= o.vw, `${where}: the page scrolls sideways (${o.scrollWidth} px)`);
}

test("at 390 px a long last-message preview does not widen the list; list, dialog and conversation fit", { timeout: 120_000 }, async () => {
  const lou = await BrowserUser.open("lou", { viewport: { width: 390, height: 780 } });
  const mia = await BrowserUser.open("mia");
  users.push(lou, mia);
  await lou.signIn(chatd, chatd.token("lou", "advocate", "Lou Advocate"));
  await mia.signIn(chatd, chatd.token("mia", "client", "Mia Client with a rather long display name"));
  await mia.createPrivate("lou");
  const long =
    "Please review the attached settlement agreement draft before Thursday's mediation session with opposing counsel and the insurer";
  await mia.send(long);
  await mia.send(`and the docket: https://court.example/cases/2026-CV-0113/${"documents-".repeat(12)}final`);

  const item = lou.page.locator('.conv[data-title="Mia Client with a rather long display name"]');
  await item.locator(".badge", { hasText: "2" }).waitFor();
  // The badge, the time, New and Sign out are on the screen.
  await assertFits(lou.page, "conversation list");
  await lou.page.screenshot({ path: artifactPath("phone-long-preview.png") });

  await lou.page.click("#new-conv");
  await lou.page.locator("#create").waitFor();
  await assertFits(lou.page, "new-conversation dialog");
  await lou.page.click(".dialog button[type=button]");

  await item.click();
  await lou.waitForMessage("docket");
  await assertFits(lou.page, "conversation");
  await lou.page.screenshot({ path: artifactPath("phone-long-conversation.png") });

  // The message actions: the emoji palette and a reply being written fit too.
  const msg = lou.page.locator(".msg", { hasText: "docket" });
  await msg.getByRole("button", { name: "React", exact: true }).click();
  await lou.page.getByRole("menu", { name: "React with" }).waitFor();
  await assertFits(lou.page, "emoji palette");
  await lou.page.getByRole("menuitem", { name: "React 👍" }).click();
  await msg.locator('.chip[data-emoji="👍"]').waitFor();
  await msg.getByRole("button", { name: "Reply" }).click();
  await lou.page.locator("#replying", { hasText: "docket" }).waitFor();
  await assertFits(lou.page, "reply in the composer");
  await lou.page.screenshot({ path: artifactPath("phone-message-actions.png") });
});

test("at 390 px an admin's header, Audit screen and Compliance screen fit", { timeout: 120_000 }, async () => {
  const ida = await BrowserUser.open("ida", { viewport: { width: 390, height: 780 } });
  users.push(ida);
  await ida.signIn(chatd, chatd.token("ida", "admin", "Ida Admin"));
  await ida.page.locator("#compliance-button").waitFor();
  await assertFits(ida.page, "an admin's conversation list");

  await ida.page.click("#audit-button");
  await ida.page.locator(".audit-entry").first().waitFor();
  await assertFits(ida.page, "Audit screen");
  await assertNoSideScroll(ida.page, "#audit-screen", "Audit screen");
  await ida.page.keyboard.press("Escape");
  await ida.page.locator("#audit-screen").waitFor({ state: "detached" });

  await ida.page.click("#compliance-button");
  await ida.page.locator("#hold-target").fill("CASE-2026-CV-0113-PHONE");
  await ida.page.locator("#hold-reason").fill("Litigation hold for the mediation with opposing counsel and the insurer");
  await ida.page.getByRole("button", { name: "Set hold" }).click();
  await ida.page.locator('.hold-row[data-target="CASE-2026-CV-0113-PHONE"]').waitFor();
  await assertFits(ida.page, "Compliance screen");
  await assertNoSideScroll(ida.page, "#compliance-screen", "Compliance screen");
  await ida.page.screenshot({ path: artifactPath("phone-compliance.png") });
});
