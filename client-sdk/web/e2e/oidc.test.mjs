// Sign-in with the firm's identity provider: a real OpenID provider
// (`oidc-provider`, the certified Node implementation) on a loopback port,
// a public client with PKCE redirecting to chatd's web origin, chatd
// configured with its issuer. In headless Chromium two people click "Sign
// in with…", fill the provider's login and consent forms, come back signed
// in, find each other in the directory by the provider's names and talk; a
// tampered token is refused; the sign-in screen is axe clean. A session
// outlives its first ID token: the app renews it with the refresh token and
// the server takes the new one without the connection ever dropping.
// Signing out ends the provider's session too (its logout page), so the next
// sign-in asks for the login again.
import assert from "node:assert/strict";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { after, before, test } from "node:test";
import Provider from "oidc-provider";
import { axeViolations, BrowserUser, Chatd } from "./harness.mjs";

const PEOPLE = {
  "ann-idp": { name: "Ann Provider", role: "advocate" },
  "cli-idp": { name: "Cleo Client", role: "client" },
};

const ctx = { chatd: undefined, idp: undefined, users: [] };
/** Lifetime of the provider's ID tokens, s. */
const ID_TOKEN_TTL_S = 70;

async function freePort() {
  return new Promise((res) => {
    const s = createTcpServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

before(async () => {
  const chatd = new Chatd();
  chatd.webPort = await freePort();
  const http = createServer();
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  const issuer = `http://127.0.0.1:${http.address().port}`;
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: "chat-web",
        token_endpoint_auth_method: "none",
        redirect_uris: [`http://127.0.0.1:${chatd.webPort}/`],
        post_logout_redirect_uris: [`http://127.0.0.1:${chatd.webPort}/`],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
      },
    ],
    jwks: { keys: [{ ...privateKey.export({ format: "jwk" }), kid: randomUUID(), use: "sig", alg: "RS256" }] },
    claims: { openid: ["sub"], profile: ["name", "role"] },
    conformIdTokenClaims: false,
    // Short-lived ID tokens (the app asks for a new one a minute before one
    // lapses): every session here is renewed through the refresh token.
    ttl: { IdToken: ID_TOKEN_TTL_S },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    async findAccount(_ctx, id) {
      const p = PEOPLE[id];
      if (!p) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, name: p.name, role: p.role }) };
    },
  });
  http.on("request", provider.callback());
  ctx.idp = http;
  chatd.extraEnv = {
    CHAT_AUTH__OIDC__ISSUER: issuer,
    CHAT_AUTH__OIDC__CLIENT_ID: "chat-web",
    CHAT_AUTH__OIDC__DISPLAY_NAME: "Firm ID",
  };
  ctx.chatd = await chatd.start();
});

after(async () => {
  for (const u of ctx.users) await u.close();
  await ctx.chatd?.dispose();
  ctx.idp?.closeAllConnections();
  await new Promise((r) => ctx.idp?.close(r));
});

/** Signs `user` in as `login` through the provider's own pages. */
async function signInWithProvider(user, login) {
  const page = user.page;
  await page.goto(ctx.chatd.webUrl);
  await page.getByRole("button", { name: "Sign in with Firm ID" }).click();
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any password");
  await page.locator('button[type="submit"]', { hasText: "Sign-in" }).click();
  await page.locator('button[type="submit"]', { hasText: "Continue" }).click();
  await page.locator('#status[data-state="online"]').waitFor({ timeout: 20_000 });
}

test("people sign in with the firm's identity provider and talk", { timeout: 180_000 }, async () => {
  const ann = await BrowserUser.open("ann-oidc");
  const cleo = await BrowserUser.open("cleo-oidc");
  ctx.users.push(ann, cleo);

  // The sign-in screen offers the provider; development tokens are off.
  await ann.page.goto(ctx.chatd.webUrl);
  await ann.page.getByRole("button", { name: "Sign in with Firm ID" }).waitFor();
  assert.equal(await ann.page.locator("#token").count(), 0, "no development token form when the server refuses them");
  assert.deepEqual(await axeViolations(ann.page), [], "the sign-in screen is axe clean");

  await signInWithProvider(cleo, "cli-idp");
  await signInWithProvider(ann, "ann-idp");
  assert.equal(new URL(ann.page.url()).search, "", "the code and state are gone from the address");

  // Ann finds Cleo by the provider's display name and writes to her.
  await ann.page.click("#new-conv");
  await ann.page.selectOption("#new-kind", "private");
  await ann.page.locator("#new-members").pressSequentially("Cleo");
  await ann.page.locator(".person", { hasText: "Cleo Client" }).click();
  await ann.page.click("#create");
  await ann.page.locator("#chat-title").waitFor();
  await ann.send("Hello from the firm's sign-in");
  await cleo.page.locator(".conv").first().click();
  await cleo.waitForMessage("Hello from the firm's sign-in");

  // Signing out ends the session at the provider too: its logout page, then
  // back to the sign-in screen with nothing kept, and the next sign-in asks
  // for the login again rather than riding the provider's session.
  await cleo.page.click("#sign-out");
  await cleo.page.getByRole("button", { name: "Yes, sign me out" }).click();
  await cleo.page.getByRole("button", { name: "Sign in with Firm ID" }).waitFor({ timeout: 20_000 });
  assert.equal(new URL(cleo.page.url()).origin, new URL(ctx.chatd.webUrl).origin, "back on the app");
  const kept = await cleo.page.evaluate(() => [sessionStorage.getItem("chatd.token"), sessionStorage.getItem("chatd.oidc.refresh")]);
  assert.deepEqual(kept, [null, null], "no ID token or refresh token left in the tab");
  await cleo.page.getByRole("button", { name: "Sign in with Firm ID" }).click();
  await cleo.page.locator('input[name="login"]').waitFor({ timeout: 20_000 });
  await cleo.page.locator('input[name="login"]').fill("cli-idp");
  await cleo.page.locator('input[name="password"]').fill("any password");
  await cleo.page.locator('button[type="submit"]', { hasText: "Sign-in" }).click();
  await cleo.page.locator('button[type="submit"]', { hasText: "Continue" }).or(cleo.page.locator('#status[data-state="online"]')).first().waitFor();
  if (await cleo.page.locator('button[type="submit"]', { hasText: "Continue" }).count()) {
    await cleo.page.locator('button[type="submit"]', { hasText: "Continue" }).click();
  }
  await cleo.page.locator('#status[data-state="online"]').waitFor({ timeout: 20_000 });
  await cleo.page.locator(".conv").first().click();
  await cleo.waitForMessage("Hello from the firm's sign-in");

  // A tampered token (the role raised to admin, signature kept) is refused.
  const tampered = await cleo.page.evaluate(() => {
    const t = sessionStorage.getItem("chatd.token") ?? "";
    const [h, p, s] = t.split(".");
    const claims = JSON.parse(atob(p.replace(/-/g, "+").replace(/_/g, "/")));
    claims.role = "admin";
    const body = btoa(JSON.stringify(claims)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    return `${h}.${body}.${s}`;
  });
  const mallory = await BrowserUser.open("mallory-oidc");
  ctx.users.push(mallory);
  await mallory.page.goto(`${ctx.chatd.webUrl}/#token=${encodeURIComponent(tampered)}`);
  await mallory.page.locator("form.signin .error", { hasText: "signature" }).waitFor({ timeout: 20_000 });
});

test("a session outlives its first ID token: renewed through the refresh token, never dropped", { timeout: 180_000 }, async () => {
  const rae = await BrowserUser.open("rae-oidc");
  ctx.users.push(rae);
  await signInWithProvider(rae, "ann-idp");
  const first = await rae.page.evaluate(() => sessionStorage.getItem("chatd.token"));
  const exp = JSON.parse(Buffer.from(first.split(".")[1], "base64url").toString()).exp * 1000;
  // Every change of the connection's state from here on, seen in the page.
  await rae.page.evaluate(() => {
    globalThis.stateChanges = [];
    const status = document.getElementById("status");
    new MutationObserver(() => globalThis.stateChanges.push(status.dataset.state)).observe(status, { attributes: true, attributeFilter: ["data-state"] });
  });
  // A renewed token arrives before the first lapses...
  await rae.page.waitForFunction((t) => sessionStorage.getItem("chatd.token") !== t, first, { timeout: 30_000, polling: 500 });
  const renewed = await rae.page.evaluate(() => sessionStorage.getItem("chatd.token"));
  const claims = JSON.parse(Buffer.from(renewed.split(".")[1], "base64url").toString());
  assert.equal(claims.sub, "ann-idp", "the same user");
  assert.ok(claims.exp * 1000 > exp, "a later expiry");
  // ...and the session goes on past the first token's expiry on the same connection.
  const wait = exp - Date.now() + 3_000;
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  assert.equal(await rae.page.locator("#status").getAttribute("data-state"), "online");
  assert.deepEqual(await rae.page.evaluate(() => globalThis.stateChanges), [], "the connection never dropped");
  const refused = rae.console.filter((l) => /refus|TOKEN_EXPIRED|FORBIDDEN/.test(l));
  assert.deepEqual(refused, [], "no refresh was refused");
});
