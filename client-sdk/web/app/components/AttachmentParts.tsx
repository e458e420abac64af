// Attachments on screen: the files of a stored message (an image's
// thumbnail, a document's chip with name, size and type; a click downloads)
// and the composer's tray of files going with the next message (a progress
// bar while they upload, the server's refusal if one is refused).

import type { pb } from "../../src/sdk/index.js";
import { downloadFile, humanSize, removeUpload, thumbnailUrl, typeLabel } from "../attachments.js";
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

function Chip({ conv, a }: { conv: bigint; a: pb.Attachment }) {
  return (
    <button
      type="button"
      class="attachment file-chip"
      data-name={a.name}
      aria-label={`Download ${a.name}, ${typeLabel(a.mediaType, a.name)}, ${humanSize(a.size)}`}
      onClick={() => void downloadFile(conv, a)}
    >
      <span class="file-type">{typeLabel(a.mediaType, a.name)}</span>
      <span class="file-name">{a.name}</span>
      <span class="file-size muted">{humanSize(a.size)}</span>
    </button>
  );
}

/** The attachments of a stored message. */
export function MessageAttachments({ m }: { m: pb.Message }) {
  if (m.deleted || m.attachments.length === 0) return null;
  return (
    <div class="attachments">
      {m.attachments.map((a) =>
        a.thumbnail ? (
          <Preview key={a.attachmentId} conv={m.conversationId} a={a} />
        ) : (
          <Chip key={a.attachmentId} conv={m.conversationId} a={a} />
        ),
      )}
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
