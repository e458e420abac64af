// The real parts the browser tests drive: the chatd binary (fresh data
// directory, free ports, tokens minted by `chatd token`), headless Chromium
// through playwright-core, and the Rust SDK through its `jsonl` example; and
// axe-core, injected into a page to check its accessibility.

import { spawn, execFileSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { after, before } from "node:test";
import { chromium } from "playwright-core";

export const WEB_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const REPO = resolve(WEB_DIR, "../..");
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(REPO, "target");
export const CHATD_BIN = process.env.CHATD_BIN ? resolve(process.env.CHATD_BIN) : join(targetDir, "debug/chatd");
export const JSONL_BIN = process.env.CHAT_JSONL_BIN
  ? resolve(process.env.CHAT_JSONL_BIN)
  : join(dirname(CHATD_BIN), "examples/jsonl");
export const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
export const ARTIFACTS = join(WEB_DIR, "e2e/artifacts");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freeTcpPort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function freeUdpPort() {
  return new Promise((res, rej) => {
    const s = createSocket("udp4");
    s.once("error", rej);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Waits until `fn` returns a truthy value (polling), or throws with `what`. */
export async function until(fn, what, timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${String(last)})`);
    await sleep(100);
  }
}

/** A chatd process on loopback with its own data directory. */
export class Chatd {
  /** `extraEnv`: more configuration (e.g. `CHAT_MESSAGES__EDIT_WINDOW_SECS`). */
  constructor(extraEnv = {}) {
    this.extraEnv = extraEnv;
    this.dataDir = mkdtempSync(join(tmpdir(), "chatd-e2e-"));
    this.log = [];
    this.proc = undefined;
  }

  env() {
    return {
      ...process.env,
      CHAT_LOG: process.env.CHAT_LOG ?? "info,quinn=warn",
      CHAT_LIMITS__CONNECTIONS_PER_MINUTE_PER_IP: "10000",
      CHAT_LIMITS__CONNECTIONS_PER_MINUTE_PER_USER: "10000",
      CHAT_LIMITS__MESSAGES_PER_MINUTE: "10000",
      CHAT_WEB__LISTEN: `127.0.0.1:${this.webPort}`,
      // `chatd token` mints with this data directory's own dev secret, as `serve` verifies.
      CHAT_DATA_DIR: this.dataDir,
      ...this.extraEnv,
    };
  }

  async start() {
    if (!existsSync(CHATD_BIN)) throw new Error(`no chatd binary at ${CHATD_BIN}; build it (cargo build -p chat-server --bin chatd) or set CHATD_BIN`);
    this.udpPort ??= await freeUdpPort();
    this.webPort ??= await freeTcpPort();
    const proc = spawn(
      CHATD_BIN,
      ["serve", "--listen", `127.0.0.1:${this.udpPort}`, "--shards", "2", "--data-dir", this.dataDir],
      { env: this.env(), stdio: ["ignore", "pipe", "pipe"] },
    );
    this.proc = proc;
    const lines = [];
    const collect = (stream) =>
      createInterface({ input: stream }).on("line", (l) => {
        lines.push(l);
        this.log.push(l);
        if (process.env.E2E_VERBOSE) console.error(`[chatd] ${l}`);
      });
    collect(proc.stdout);
    collect(proc.stderr);
    const exited = new Promise((r) => proc.once("exit", (code, sig) => r(`chatd exited (${code ?? sig})`)));
    const hashLine = await Promise.race([
      until(() => lines.find((l) => /certificate sha256: [0-9a-f]{64}/.test(l)), "chatd to start", 30_000),
      exited.then((m) => {
        throw new Error(`${m}:\n${lines.join("\n")}`);
      }),
    ]);
    this.certHash = /certificate sha256: ([0-9a-f]{64})/.exec(hashLine)[1];
    this.webUrl = `http://127.0.0.1:${this.webPort}`;
    // The HTTP listener serves the app and its config.
    await until(async () => (await fetch(`${this.webUrl}/config.json`)).ok, "the web listener");
    return this;
  }

  /** Stops with SIGTERM (sessions are told to reconnect, the store flushes). */
  async stop() {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const done = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await Promise.race([done, sleep(10_000).then(() => p.kill("SIGKILL"))]);
    this.proc = undefined;
  }

  async restart() {
    await this.stop();
    await this.start();
  }

  token(user, role = "advocate", name = user) {
    return execFileSync(CHATD_BIN, ["token", "--user", user, "--role", role, "--name", name], { env: this.env() })
      .toString()
      .trim()
      .split("\n")[0]
      .trim();
  }

  /** The app's URL signed in as `token` (the app reads and clears the fragment). */
  appUrl(token, query = "") {
    return `${this.webUrl}/${query}#token=${encodeURIComponent(token)}`;
  }

  async dispose() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** One browser user: a fresh persistent Chromium profile and one page. */
export class BrowserUser {
  static async open(name, { viewport = { width: 1100, height: 720 }, initScript } = {}) {
    const u = new BrowserUser();
    u.name = name;
    u.profile = mkdtempSync(join(tmpdir(), `chromium-${name}-`));
    u.context = await chromium.launchPersistentContext(u.profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport,
    });
    u.dialogs = [];
    u.console = [];
    u.page = u.context.pages()[0] ?? (await u.context.newPage());
    if (initScript) await u.page.addInitScript(initScript);
    u.page.on("dialog", (d) => {
      u.dialogs.push(d.message());
      void d.dismiss();
    });
    u.page.on("console", (m) => {
      u.console.push(`${m.type()}: ${m.text()}`);
      if (process.env.E2E_VERBOSE) console.error(`[${name}] ${m.type()}: ${m.text()}`);
    });
    u.page.on("pageerror", (e) => u.console.push(`pageerror: ${e.message}`));
    return u;
  }

  async signIn(chatd, token, query = "") {
    await this.page.goto(chatd.appUrl(token, query));
    await this.page.locator('#status[data-state="online"]').waitFor({ timeout: 20_000 });
  }

  async transport() {
    return this.page.locator("#status").getAttribute("data-transport");
  }

  async createPrivate(userId) {
    await this.page.click("#new-conv");
    await this.page.selectOption("#new-kind", "private");
    await this.page.fill("#new-members", userId);
    await this.page.click("#create");
    // The dialog closes once the new conversation is open: until then a
    // conversation open before would still take what is typed.
    await this.page.locator("#create").waitFor({ state: "detached" });
    await this.page.locator("#chat-title").waitFor();
  }

  async open(title) {
    await this.page.locator(`.conv[data-title="${title}"]`).click();
    await this.page.locator("#chat-title", { hasText: title }).waitFor();
  }

  async send(text) {
    await this.page.fill("#composer-input", text);
    await this.page.press("#composer-input", "Enter");
  }

  /** The texts of the open conversation's stored messages, in order. */
  async messages() {
    return this.page.$$eval(".msg:not(.pending) .body", (els) => els.map((e) => e.textContent ?? ""));
  }

  async waitForMessage(text, timeout = 15_000) {
    await this.page.locator(".msg:not(.pending) .body", { hasText: text }).first().waitFor({ timeout });
  }

  async close() {
    await this.context.close().catch(() => {});
    rmSync(this.profile, { recursive: true, force: true });
  }
}

/** A Rust SDK user, driven through `client-sdk/examples/jsonl.rs`. */
export class RustUser {
  static async start(chatd, token, { webtransport = false } = {}) {
    if (!existsSync(JSONL_BIN)) throw new Error(`no jsonl example at ${JSONL_BIN}; build it (cargo build -p chat-client --features mls --example jsonl) or set CHAT_JSONL_BIN`);
    const u = new RustUser();
    u.events = [];
    u.nextId = 1;
    const args = ["--addr", `127.0.0.1:${chatd.udpPort}`, "--cert-hash", chatd.certHash, "--token", token];
    if (webtransport) args.push("--webtransport");
    u.proc = spawn(JSONL_BIN, args, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
    createInterface({ input: u.proc.stdout }).on("line", (l) => {
      try {
        u.events.push(JSON.parse(l));
      } catch {
        u.events.push({ event: "garbage", line: l });
      }
    });
    u.stderr = [];
    createInterface({ input: u.proc.stderr }).on("line", (l) => u.stderr.push(l));
    await until(() => u.events.find((e) => e.event === "ready"), "the Rust client to connect");
    return u;
  }

  async call(cmd) {
    const id = this.nextId++;
    this.proc.stdin.write(`${JSON.stringify({ ...cmd, id })}\n`);
    const r = await until(() => this.events.find((e) => e.event === "reply" && e.id === id), `reply to ${cmd.cmd}`);
    if (!r.ok) throw new Error(`${cmd.cmd} failed: ${r.error}`);
    return r;
  }

  messages(conv) {
    return this.events.filter((e) => e.event === "message" && e.conv === conv);
  }

  async close() {
    if (this.proc.exitCode !== null) return;
    this.proc.stdin.write(`${JSON.stringify({ cmd: "quit" })}\n`);
    await Promise.race([new Promise((r) => this.proc.once("exit", r)), sleep(3000)]);
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}

export function artifactPath(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

export function writeArtifact(name, text) {
  writeFileSync(artifactPath(name), text);
}

/** An init script that makes the page a browser without WebTransport (the app then falls back to WebSocket). */
export const NO_WEBTRANSPORT = () => {
  delete globalThis.WebTransport;
};

/**
 * One chatd for the test file (started before its tests, disposed after
 * them) with `extraEnv` configuration, and the browser users to close at the
 * end: `ctx.chatd`, `ctx.users`.
 */
export function chatdForFile(extraEnv = {}) {
  const ctx = { chatd: undefined, users: [] };
  before(async () => {
    ctx.chatd = await new Chatd(extraEnv).start();
  });
  after(async () => {
    for (const u of ctx.users) await u.close();
    await ctx.chatd?.dispose();
  });
  return ctx;
}

/** axe-core's source, injected into pages through the DevTools protocol (not subject to the app's CSP). */
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * Runs axe-core on the page as it is now; returns the serious and critical
 * violations as one line each ("rule: target(s)").
 */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof globalThis.axe !== "undefined"))) await page.evaluate(AXE_SOURCE);
  const found = await page.evaluate(async () => {
    const r = await globalThis.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(" ")) }));
  });
  return found
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}: ${v.help}): ${v.targets.slice(0, 5).join(", ")}`);
}

/** What the app's saved history (PWA) of `user` holds: messages per conversation and the names (undefined: nothing saved). */
export const savedView = (page, user) =>
  page.evaluate(
    (user) =>
      new Promise((resolve, reject) => {
        const r = indexedDB.open("chatd-history", 1);
        r.onupgradeneeded = () => r.result.createObjectStore("snapshots", { keyPath: "user" });
        r.onerror = () => reject(r.error);
        r.onsuccess = () => {
          const get = r.result.transaction("snapshots").objectStore("snapshots").get(user);
          get.onsuccess = () =>
            resolve(get.result && { messages: get.result.convs.map((c) => c.messages.length), names: get.result.names.map(([, n]) => n) });
          get.onerror = () => reject(get.error);
        };
      }),
    user,
  );
