// Attachments on screen: the files of a stored message (an image's
// thumbnail, a document's chip with name, size and type; a click downloads)
// (an E2E message's, as decrypted, opened with their keys on download)
// and the composer's tray of files going with the next message (a progress
// bar while they upload, the server's refusal if one is refused).

import type { pb } from "../../src/sdk/index.js";
import { downloadFile, humanSize, removeUpload, thumbnailUrl, typeLabel } from "../attachments.js";
import { downloadE2eFile } from "../e2e-actions.js";
import { decryptedFiles } from "../format.js";
import type { ConvView } from "../state.js";

function Preview({ conv, a }: { conv: bigint; a: pb.Attachment }) {
  const url = thumbnailUrl(conv, a);
  const label = `Download ${a.name}, ${humanSize(a.size)}`;
  return (
    <button type="button" class="attachment image" aria-label={label} title={label} onClick={() => void downloadFile(conv, a)}>
      {url ? (
        <img src={url} alt={a.name} width={a.thumbnail?.width} height={a.thumbnail?.height} />
      ) : (
        <span class="thumb-placeholder muted">{a.name}</span>
      )}
    </button>
  );
}

/** A file's chip: its type, name and size; a click downloads it. */
function Chip({ a, download }: { a: { name: string; mediaType: string; size: bigint }; download: () => void }) {
  return (
    <button
      type="button"
      class="attachment file-chip"
      data-name={a.name}
      aria-label={`Download ${a.name}, ${typeLabel(a.mediaType, a.name)}, ${humanSize(a.size)}`}
      onClick={download}
    >
      <span class="file-type">{typeLabel(a.mediaType, a.name)}</span>
      <span class="file-name">{a.name}</span>
      <span class="file-size muted">{humanSize(a.size)}</span>
    </button>
  );
}

/** The attachments of a stored message. */
export function MessageAttachments({ m }: { m: pb.Message }) {
  if (m.body?.content.case === "ciphertext") return <E2eAttachments m={m} />;
  if (m.deleted || m.attachments.length === 0) return null;
  return (
    <div class="attachments">
      {m.attachments.map((a) =>
        a.thumbnail ? (
          <Preview key={a.attachmentId} conv={m.conversationId} a={a} />
        ) : (
          <Chip key={a.attachmentId} a={a} download={() => void downloadFile(m.conversationId, a)} />
        ),
      )}
    </div>
  );
}

/** The files of an E2E message as this device decrypted it (real names; each opened with its key on download). */
function E2eAttachments({ m }: { m: pb.Message }) {
  const files = decryptedFiles(m);
  if (m.deleted || files.length === 0) return null;
  return (
    <div class="attachments">
      {files.map((f) => (
        <Chip key={f.attachmentId} a={f} download={() => void downloadE2eFile(m.conversationId, f)} />
      ))}
    </div>
  );
}

/** The files going with the next message of `v`. */
export function UploadTray({ v }: { v: ConvView }) {
  if (v.uploads.length === 0) return null;
  return (
    <ul class="upload-tray" aria-label="Files to send">
      {v.uploads.map((u) => (
        <li key={u.key} class={`upload${u.error ? " failed" : u.attachment ? " done" : ""}`} data-name={u.name}>
          <span class="file-name">{u.name}</span>
          <span class="file-size muted">{humanSize(u.size)}</span>
          {!u.attachment && !u.error && (
            <progress max={Math.max(u.size, 1)} value={u.sent} aria-label={`Uploading ${u.name}`} />
          )}
          {u.error && <span class="error">{u.error}</span>}
          <button type="button" class="small" aria-label={`Remove ${u.name}`} onClick={() => removeUpload(v, u.key)}>
            ✕
          </button>
        </li>
      ))}
    </ul>
  );
}
