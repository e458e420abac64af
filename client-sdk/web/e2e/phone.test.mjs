// The phone layout at 360-430 px (issue 15, item 3): a long last-message
// preview must not widen the list past the screen, and no screen sticks out
// of the viewport: on each screen the tests check the narrowest (360), a
// common (390) and the widest (430) phone width that every element's visible
// box (clipped by its scrolling/clipping ancestors) ends inside the screen,
// and the page does not scroll sideways. The screens: sign-in, the list (long
// previews, an admin's header), the support queue, New, the conversation with
// the emoji palette and a reply, Add members, Manage, search results,
// Templates and its editor, Audit and Compliance.
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

/** The phone widths every screen is checked at, px. */
const WIDTHS = [360, 390, 430];
/** The phone the tests use between checks. */
const PHONE = { width: 390, height: 780 };

/** Nothing on the screen sticks out at any of the phone `WIDTHS` (then back to `PHONE`). */
async function assertFits(page, where) {
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: PHONE.height });
    // Two frames: the layout at the new width is the one measured.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const o = await overflow(page);
    assert.equal(o.vw, width, "the viewport is the phone's");
    assert.deepEqual(o.out, [], `${where}: elements outside the ${o.vw} px screen`);
    assert.ok(o.scrollWidth <= o.vw, `${where}: the page scrolls sideways at ${width} px (${o.scrollWidth} px)`);
  }
  await page.setViewportSize(PHONE);
}

test("at 360-430 px a long last-message preview does not widen the list; list, dialog and conversation fit", { timeout: 120_000 }, async () => {
  const lou = await BrowserUser.open("lou", { viewport: PHONE });
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

test("at 360-430 px an admin's header, Audit screen and Compliance screen fit", { timeout: 120_000 }, async () => {
  const ida = await BrowserUser.open("ida", { viewport: PHONE });
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

test("at 360-430 px sign-in, the support queue, New, Add members, Manage, search and Templates fit", { timeout: 150_000 }, async () => {
  const pat = await BrowserUser.open("pat", { viewport: PHONE });
  const cal = await BrowserUser.open("cal");
  users.push(pat, cal);
  await pat.page.goto(chatd.webUrl);
  await pat.page.locator("#token").waitFor();
  await assertFits(pat.page, "sign-in");
  await pat.page.fill("#token", chatd.token("pat", "admin", "Pat Partner-in-charge of Litigation"));
  await pat.page.getByRole("button", { name: "Sign in" }).click();
  await pat.page.locator('#status[data-state="online"]').waitFor({ timeout: 20_000 });

  // A client's support request reaches the queue of staff.
  await cal.signIn(chatd, chatd.token("cal", "client", "Cal Client"));
  await cal.page.click("#new-conv");
  await cal.page.selectOption("#new-kind", "support");
  await cal.page.fill("#new-title", "Question about the retainer invoice for the mediation with the insurer in March");
  await cal.page.click("#create");
  await cal.page.locator("#chat-title").waitFor();
  await pat.page.locator(".queue-item", { hasText: "retainer invoice" }).waitFor({ timeout: 20_000 });
  await assertFits(pat.page, "support queue");

  // New group, filled in with long values.
  await pat.page.click("#new-conv");
  await pat.page.selectOption("#new-kind", "group");
  await pat.page.fill("#new-title", "Estate of Doe — probate, the contested will and the guardianship of the minor children");
  await pat.page.locator("#new-members").pressSequentially("Cal");
  await pat.page.locator(".person", { hasText: "Cal Client" }).waitFor();
  await assertFits(pat.page, "New group dialog with people suggested");
  await pat.page.locator(".person", { hasText: "Cal Client" }).click();
  await pat.page.click("#create");
  await pat.page.locator("#chat-title", { hasText: "Estate of Doe" }).waitFor();
  await pat.send("The hearing on the guardianship is moved to the 14th");
  await pat.waitForMessage("guardianship is moved");
  await assertFits(pat.page, "group conversation");

  // Add members, with suggestions open.
  await pat.page.getByRole("button", { name: "Add", exact: true }).click();
  const add = pat.page.getByRole("dialog", { name: "Add members" });
  await add.waitFor();
  await pat.page.locator("#add-members").pressSequentially("Cal");
  await add.locator(".person", { hasText: "Cal Client" }).waitFor();
  await assertFits(pat.page, "Add members dialog");
  await pat.page.keyboard.press("Escape");
  await add.waitFor({ state: "detached" });

  // Manage: members, roles, archive and the leave confirmation.
  await pat.page.click("#manage-button");
  const manage = pat.page.locator("#manage-dialog");
  await manage.getByLabel("Role of Cal Client").waitFor();
  await assertFits(pat.page, "Manage dialog");
  await assertNoSideScroll(pat.page, "#manage-dialog", "Manage dialog");
  await pat.page.click("#leave");
  await pat.page.locator("#leave-confirm").waitFor();
  await assertFits(pat.page, "Manage dialog, leave confirmation");
  await pat.page.keyboard.press("Escape");
  await manage.waitFor({ state: "detached" });

  // Back to the list, and search from there.
  await pat.page.getByRole("button", { name: "Back to conversations" }).click();
  await pat.page.fill("#search-input", "guardianship");
  await pat.page.press("#search-input", "Enter");
  await pat.page.locator(".search-hit").first().waitFor({ timeout: 20_000 });
  await assertFits(pat.page, "search results");

  // Templates, and the editor with long values.
  await pat.page.click("#templates-button");
  await pat.page.locator("#templates-screen").waitFor();
  await assertFits(pat.page, "Templates screen");
  await pat.page.click("#templates-new");
  await pat.page.locator("#template-editor").waitFor();
  await pat.page.fill("#template-name", "guardianship-hearing-reminder");
  await pat.page.fill(
    "#template-body",
    "Dear {client_name}, the hearing in {conversation_title} on the guardianship of the minor children is moved to {date}; please confirm by return. {my_name}",
  );
  await pat.page.locator("#template-preview", { hasText: "Dear Jane Client" }).waitFor();
  await assertFits(pat.page, "template editor");
  await assertNoSideScroll(pat.page, "#templates-screen", "Templates screen");
  await pat.page.screenshot({ path: artifactPath("phone-template-editor.png") });
});
