// Attachments in the app: files picked or dropped on the composer upload at
// once on streams of their own (progress shown), then go with the next
// message; images show the server's thumbnail, documents a chip with name,
// size and type, and either downloads on a click. Downloaded bytes become
// blob: URLs (never HTML); thumbnails are cached per attachment.

import { Attachments, ClientError, type pb } from "../src/sdk/index.js";
import { describeError } from "./format.js";
import { type ConvView, changed, currentView, store, type Upload } from "./state.js";
import { saveFile } from "./save-file.js";

let nextKey = 1;

/** Thumbnails by `conv:attachment`: a blob URL, or "loading" / "failed". */
const thumbs = new Map<string, string>();

/** File sizes as people read them. */
export function humanSize(n: number | bigint): string {
  const b = Number(n);
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(b < 10 * 1024 ? 1 : 0)} KB`;
  return `${(b / (1024 * 1024)).toFixed(1)} MB`;
}

/** A short label for a media type ("PDF", "PNG", "DOCX"...). */
export function typeLabel(mediaType: string, name: string): string {
  const ext = name.includes(".") ? name.split(".").pop()!.toUpperCase() : "";
  if (ext && ext.length <= 5) return ext;
  return mediaType.split("/").pop()?.toUpperCase() ?? "FILE";
}

/** Starts uploading `files` to the open conversation. */
export function attachFiles(files: Iterable<File>): void {
  const v = currentView();
  const c = store.client;
  const conv = v?.summary.conversation?.id;
  if (!v || !c || conv === undefined) return;
  const att = new Attachments(c);
  for (const file of files) {
    const u: Upload = { key: nextKey++, name: file.name, size: file.size, sent: 0 };
    v.uploads.push(u);
    changed();
    att
      .upload(conv, file.name, file.type || "application/octet-stream", file, (sent) => {
        u.sent = sent;
        changed();
      })
      .then(
        (a) => {
          u.attachment = a;
          u.sent = u.size;
          changed();
        },
        (e: unknown) => {
          u.error = e instanceof ClientError && e.wire ? `${e.wire.name}: ${e.wire.message}` : describeError(e);
          changed();
        },
      );
  }
}

/** Takes a file off the next message (an upload under way finishes unused). */
export function removeUpload(v: ConvView, key: number): void {
  v.uploads = v.uploads.filter((u) => u.key !== key);
  changed();
}

/** The stored attachments of the next message, taken off the tray; undefined while one is still uploading. */
export function takeReady(v: ConvView): pb.Attachment[] | undefined {
  if (v.uploads.some((u) => !u.attachment && !u.error)) return undefined;
  const ready = v.uploads.flatMap((u) => (u.attachment ? [u.attachment] : []));
  v.uploads = [];
  return ready;
}

/** The thumbnail's URL once loaded (starting the load on first ask). */
export function thumbnailUrl(conv: bigint, a: pb.Attachment): string | undefined {
  const k = `${conv}:${a.attachmentId}`;
  const have = thumbs.get(k);
  if (have !== undefined) return have === "loading" || have === "failed" ? undefined : have;
  const c = store.client;
  if (!c || !a.thumbnail) return undefined;
  thumbs.set(k, "loading");
  new Attachments(c).download(conv, a.attachmentId, { thumbnail: true }).then(
    (d) => {
      thumbs.set(k, URL.createObjectURL(new Blob([d.bytes], { type: a.thumbnail?.mediaType || "image/png" })));
      changed();
    },
    (e: unknown) => {
      console.warn("thumbnail not loaded", a.name, describeError(e));
      thumbs.set(k, "failed");
    },
  );
  return undefined;
}

/** Downloads an attachment and hands it to the browser as a file. */
export async function downloadFile(conv: bigint, a: pb.Attachment): Promise<void> {
  const c = store.client;
  if (!c) return;
  try {
    const d = await new Attachments(c).download(conv, a.attachmentId);
    saveFile(new Blob([d.bytes], { type: a.mediaType }), a.name);
  } catch (e) {
    store.banner = `Download failed: ${describeError(e)}`;
    changed();
  }
}
