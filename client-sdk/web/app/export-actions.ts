// The GDPR export from the app: a user downloads their own data (the
// sidebar's "Download my data"), a system admin anyone's (the Compliance
// screen). The server makes one tar archive (profile, memberships and
// receipts, the messages they sent with earlier versions, their uploads,
// the audit entries about them, a manifest with SHA-256s); it arrives on a
// transfer stream and is saved as a file.

import { Attachments, type pb } from "../src/sdk/index.js";
import { counted } from "./format.js";
import { saveFile } from "./save-file.js";
import { connectedClient } from "./state.js";

/** Exports `userId`'s data (empty: the signed-in user's) and saves the archive; its counts. */
export async function exportUserData(userId = ""): Promise<pb.ExportOk> {
  const { ok, bytes } = await new Attachments(connectedClient()).exportUserData(userId.trim());
  const day = new Date(Number(ok.exportedAtMs)).toISOString().slice(0, 10);
  saveFile(new Blob([bytes], { type: "application/x-tar" }), `chat-data-${ok.userId}-${day}.tar`);
  return ok;
}

/** One sentence saying what an export holds. */
export function describeExport(ok: pb.ExportOk): string {
  const held = [
    counted(ok.conversations, "conversation"),
    counted(ok.messages, "message"),
    counted(ok.attachments, "file"),
    counted(ok.auditEntries, "audit entry", "audit entries"),
  ];
  return `Saved the data of ${ok.userId}: ${held.join(", ")}.`;
}
