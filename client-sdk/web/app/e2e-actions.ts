// End-to-end encrypted conversations in the app: this browser's MLS device
// for the signed-in user (its keys in IndexedDB, sealed; see the SDK's
// `mls/`), its KeyPackages kept published, every E2E conversation's entries
// applied in order (live from the events, and caught up from history after
// a start or a reconnect), what it decrypted shown in place of "Encrypted
// message", sending, and the safety numbers to compare out of band.

import { create } from "@bufbuild/protobuf";
import { type Client, E2e, IndexedDbKeyValue, MlsDevice, pb, type Received } from "../src/sdk/index.js";
import { saveFile } from "./save-file.js";
import { describeError } from "./format.js";
import { changed, type ConvView, currentView, key, store } from "./state.js";

/** KeyPackages this device keeps in the directory (others claim one to add it). */
const KEY_PACKAGES = 20;
/** Below this many left, more are published. */
const REPLENISH_BELOW = 5;

/** How often at most this app looks for members' new devices in one conversation, ms. */
const NEW_DEVICES_EVERY_MS = 10 * 60_000;
/** When it last looked, by conversation. */
const lookedForDevices = new Map<string, number>();

/** The E2E conversations whose group this device is in. */
const joined = new Set<string>();

/** Forgets what this device showed (signing out). */
export function forgetE2e(): void {
  store.decrypted.clear();
  joined.clear();
  loaded.clear();
  lookedForDevices.clear();
  store.e2e = undefined;
  store.e2eProblem = "";
}

/** Whether this device can read and write in E2E conversation `v` (it is in its group). */
export function canWrite(v: ConvView): boolean {
  return joined.has(key(v.summary.conversation?.id ?? 0n));
}

async function noteMembership(conv: bigint): Promise<void> {
  if ((await store.e2e?.device.epoch(conv)) !== undefined) joined.add(key(conv));
  else joined.delete(key(conv));
}

function remember(conv: bigint, seq: bigint, content: pb.E2eContent): void {
  let m = store.decrypted.get(key(conv));
  if (!m) store.decrypted.set(key(conv), (m = new Map()));
  m.set(seq, content);
}

function isE2e(v: ConvView | undefined): boolean {
  return v?.summary.conversation?.e2e === true;
}

/** Shows the texts among `received` (applied in `conv`). */
function rememberTexts(conv: bigint, received: Received[]): void {
  for (const r of received) if (r.kind === "text") remember(conv, r.seq, r.content);
}

/** The E2E conversations whose kept texts were read from the device's store (once each). */
const loaded = new Set<string>();

/** Shows what `device` decrypted (or sent) before in `conv`, the first time it is asked. */
async function loadDecrypted(device: MlsDevice, conv: bigint): Promise<void> {
  if (loaded.has(key(conv))) return;
  for (const d of await device.decrypted(conv)) remember(conv, d.seq, d.content);
  loaded.add(key(conv));
}

/** Opens this browser's device for the signed-in user, publishes KeyPackages and catches up every E2E conversation. */
export async function startE2e(client: Client): Promise<void> {
  const user = client.user?.id;
  if (!user || store.e2e?.client === client) return;
  try {
    const device = await MlsDevice.open(new IndexedDbKeyValue(user), user);
    const e2e = new E2e(client, device);
    await e2e.replenish(KEY_PACKAGES);
    // Ready: others can add this device now (StatusBar's data-e2e says so).
    store.e2e = e2e;
    store.e2eProblem = "";
    await catchUpAll();
    const open = currentView();
    if (open) await addNewDevicesOf(open);
  } catch (e) {
    store.e2eProblem = `End-to-end encryption is unavailable on this device: ${describeError(e)}`;
  }
  changed();
}

/**
 * Offline (the saved history shown): what this browser's device decrypted
 * before, in place of "Encrypted message". The device needs no network; it
 * is only read, never made here.
 */
export async function showDecryptedOffline(user: string): Promise<void> {
  try {
    const kv = new IndexedDbKeyValue(user);
    if (!(await kv.get("device"))) return;
    const device = await MlsDevice.open(kv, user);
    for (const v of store.convs.values()) {
      const conv = v.summary.conversation;
      if (conv?.e2e) await loadDecrypted(device, conv.id);
    }
  } catch {
    // Unreadable here: the messages show as "Encrypted message", as before.
  }
  changed();
}

/** Applies what every E2E conversation holds past what this device applied (after a start or a reconnect). */
export async function catchUpAll(): Promise<void> {
  for (const v of [...store.convs.values()]) if (isE2e(v)) await catchUp(v);
}

/** Applies one E2E conversation's entries past what this device applied. */
export async function catchUp(v: ConvView): Promise<void> {
  const e2e = store.e2e;
  const conv = v.summary.conversation?.id;
  if (!e2e || conv === undefined) return;
  try {
    await loadDecrypted(e2e.device, conv);
    rememberTexts(conv, await e2e.catchUp(conv));
    await noteMembership(conv);
    await replenishIfLow();
  } catch (e) {
    store.banner = `Could not read the encrypted conversation: ${describeError(e)}`;
  }
  changed();
}

/**
 * Adds the devices of `v`'s members that its group lacks (a member's new
 * browser or phone, or a member added before any device of theirs was
 * ready): when the conversation opens, at most every 10 minutes. The claim
 * skips the devices the group has, so it costs them nothing; a refusal (the
 * claim rate) waits for the next time.
 */
export async function addNewDevicesOf(v: ConvView): Promise<void> {
  const e2e = store.e2e;
  const conv = v.summary.conversation?.id;
  if (!e2e || conv === undefined || !canWrite(v)) return;
  const last = lookedForDevices.get(key(conv)) ?? 0;
  if (Date.now() - last < NEW_DEVICES_EVERY_MS) return;
  lookedForDevices.set(key(conv), Date.now());
  try {
    await e2e.addNewDevices(conv);
  } catch {
    // Nothing to show: the devices wait for the next look (or a member's app).
  }
}

/** Applies one live entry of an E2E conversation (called in seq order). */
export function receiveE2e(m: pb.Message): void {
  const e2e = store.e2e;
  if (!e2e || m.body?.content.case !== "ciphertext") return;
  void e2e
    .receiveLive(m)
    .then(async (all) => {
      rememberTexts(m.conversationId, all);
      if (all.some((r) => r.kind === "joined" || r.kind === "committed")) await noteMembership(m.conversationId);
      if (all.some((r) => r.kind === "joined")) await replenishIfLow();
      changed();
    })
    .catch((e) => {
      store.banner = `Could not read an encrypted message: ${describeError(e)}`;
      changed();
    });
}

async function replenishIfLow(): Promise<void> {
  const e2e = store.e2e;
  if (e2e && (await e2e.countKeyPackages()) < REPLENISH_BELOW) await e2e.replenish(KEY_PACKAGES);
}

/** Encrypts `text` for the open E2E conversation and sends it; false if nothing was sent (the reason in the banner). */
export async function sendE2e(v: ConvView, text: string): Promise<boolean> {
  const e2e = store.e2e;
  const conv = v.summary.conversation?.id;
  if (conv === undefined || text.trim() === "") return false;
  if (!e2e) {
    store.banner = store.e2eProblem || "End-to-end encryption is still starting on this device.";
    changed();
    return false;
  }
  try {
    const content = create(pb.E2eContentSchema, { text });
    const ok = await e2e.sendContent(conv, content);
    remember(conv, ok.seq, content);
    store.stickBottom = true;
    return true;
  } catch (e) {
    store.banner = `Not sent: ${describeError(e)}`;
    return false;
  } finally {
    changed();
  }
}

/** Seals `files` on this device, uploads them and sends them in one encrypted message (the reason in the banner if not). */
export async function sendE2eFiles(v: ConvView, files: File[]): Promise<void> {
  const e2e = store.e2e;
  const conv = v.summary.conversation?.id;
  if (!e2e || conv === undefined || files.length === 0) return;
  try {
    const parts = await Promise.all(
      files.map(async (f) => ({ name: f.name, mediaType: f.type || "application/octet-stream", bytes: new Uint8Array(await f.arrayBuffer()) })),
    );
    const content = await e2e.uploadFiles(conv, "", parts);
    const ok = await e2e.sendContent(conv, content);
    remember(conv, ok.seq, content);
    store.stickBottom = true;
  } catch (e) {
    store.banner = `Files not sent: ${describeError(e)}`;
  }
  changed();
}

/** Downloads a file of an E2E message, opens it with its key and hands it to the browser. */
export async function downloadE2eFile(conv: bigint, f: pb.E2eFile): Promise<void> {
  try {
    if (!store.e2e) throw new Error("end-to-end encryption is not running on this device");
    const bytes = await store.e2e.downloadFile(conv, f);
    saveFile(new Blob([bytes], { type: f.mediaType }), f.name);
  } catch (e) {
    store.banner = `Download failed: ${describeError(e)}`;
    changed();
  }
}

/** Creates an E2E conversation with its group (this device and every device of `members`); its id. */
export async function createE2e(kind: pb.ConversationKind, opts: { title: string; caseId: string; members: string[] }): Promise<bigint> {
  if (!store.e2e) throw new Error(store.e2eProblem || "end-to-end encryption is still starting on this device");
  const conv = await store.e2e.createConversation(kind, opts);
  await noteMembership(conv);
  return conv;
}

/** The safety number of every device in the group of `v`. */
export async function safetyNumbers(v: ConvView): Promise<{ user: string; device: string; number: string }[]> {
  const conv = v.summary.conversation?.id;
  if (!store.e2e || conv === undefined) throw new Error("end-to-end encryption is not running on this device");
  return store.e2e.device.safetyNumbers(conv);
}
