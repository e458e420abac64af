// The GDPR export from the app: a user downloads their own data (the
// sidebar's "Download my data"), a system admin anyone's (the Compliance
// screen). The server makes one tar archive (profile, memberships and
// receipts, the messages they sent with earlier versions, their uploads,
// the audit entries about them, a manifest with SHA-256s); it arrives on a
// transfer stream and is saved as a file.

import { Attachments, type pb } from "../src/sdk/index.js";
import { saveFile } from "./save-file.js";
import { store } from "./state.js";

/** Exports `userId`'s data (empty: the signed-in user's) and saves the archive; its counts. */
export async function exportUserData(userId = ""): Promise<pb.ExportOk> {
  if (!store.client) throw new Error("not connected");
  const { ok, bytes } = await new Attachments(store.client).exportUserData(userId.trim());
  const day = new Date(Number(ok.exportedAtMs)).toISOString().slice(0, 10);
  saveFile(new Blob([bytes], { type: "application/x-tar" }), `chat-data-${ok.userId}-${day}.tar`);
  return ok;
}

/** One sentence saying what an export holds. */
export function describeExport(ok: pb.ExportOk): string {
  const n = (k: bigint, one: string, many = `${one}s`) => `${k} ${k === 1n ? one : many}`;
  const held = [
    n(ok.conversations, "conversation"),
    n(ok.messages, "message"),
    n(ok.attachments, "file"),
    n(ok.auditEntries, "audit entry", "audit entries"),
  ];
  return `Saved the data of ${ok.userId}: ${held.join(", ")}.`;
}
