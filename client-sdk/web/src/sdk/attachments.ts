// Attachments over a connected Client: upload a file on a stream of its own
// (WebTransport, or a chat.mux.v1 stream of the WebSocket; with progress) and get the stored Attachment; download one (a
// byte range, to resume, or its thumbnail); export a user's data (GDPR, one
// tar archive). The protocol is "Transfer streams" in
// schemas/chat/v1/chat.proto: one length-prefixed Command frame (UploadStart,
// DownloadStart or ExportUserData), one Reply frame, raw bytes. Send the
// attachment ids with a message in `SendMessage.attachmentIds`.
import { create } from "@bufbuild/protobuf";
import {
  type Attachment,
  ClientFrameSchema,
  type Command,
  CommandSchema,
  type DownloadOk,
  DownloadStartSchema,
  type ExportOk,
  ExportUserDataSchema,
  UploadStartSchema,
} from "../gen/chat/v1/chat_pb.js";
import type { Client } from "./client.js";
import { concat, decodeServerFrame, encodeClientFrame, FrameDecoder } from "./codec.js";
import { ClientError, wireError } from "./errors.js";

/** Bytes written to an upload stream at once. */
const CHUNK = 64 * 1024;

/** What part of an attachment to download. */
export interface DownloadRange {
  /** First byte (to resume). */
  offset?: bigint;
  /** Bytes wanted (0n or absent: to the end). */
  length?: bigint;
  /** The thumbnail instead of the file. */
  thumbnail?: boolean;
}

/** A finished download: its header and its bytes. */
export interface Downloaded {
  ok: DownloadOk;
  bytes: Uint8Array<ArrayBuffer>;
}

/** A finished GDPR export: its counts and the tar archive. */
export interface Exported {
  ok: ExportOk;
  bytes: Uint8Array<ArrayBuffer>;
}

type Result = NonNullable<import("../gen/chat/v1/chat_pb.js").Reply["result"]>;

/** The attachment calls of one client. */
export class Attachments {
  constructor(private readonly client: Client) {}

  /**
   * Uploads `data` as a file `name` of type `mediaType` to a conversation the
   * user belongs to; `onProgress(sent, total)` follows it. Resolves with the
   * stored attachment; a refusal (type, size, rate) rejects with the server's error.
   */
  async upload(
    conversationId: bigint,
    name: string,
    mediaType: string,
    data: Blob | Uint8Array,
    onProgress?: (sent: number, total: number) => void,
  ): Promise<Attachment> {
    const total = data instanceof Blob ? data.size : data.length;
    const start = create(UploadStartSchema, { conversationId, name, mediaType, size: BigInt(total) });
    const stream = await this.client.openStream();
    const answer = readAnswer(stream.readable);
    const writer = stream.writable.getWriter();
    let sent = 0;
    try {
      await writer.write(header({ case: "uploadStart", value: start }));
      while (sent < total) {
        const end = Math.min(sent + CHUNK, total);
        const part =
          data instanceof Blob ? new Uint8Array(await data.slice(sent, end).arrayBuffer()) : data.subarray(sent, end);
        await writer.write(part);
        sent = end;
        onProgress?.(sent, total);
      }
      await writer.close();
    } catch {
      // The server stopped reading (it refused mid-stream): its answer says why.
    }
    const { result } = await answer;
    if (result.case !== "upload" || !result.value.attachment) {
      throw new ClientError("protocol", "reply is not an UploadOk");
    }
    return result.value.attachment;
  }

  /** Downloads an attachment of a conversation the user belongs to (or a range of it, or its thumbnail). */
  async download(conversationId: bigint, attachmentId: string, range: DownloadRange = {}): Promise<Downloaded> {
    const start = create(DownloadStartSchema, {
      conversationId,
      attachmentId,
      offset: range.offset ?? 0n,
      length: range.length ?? 0n,
      thumbnail: range.thumbnail ?? false,
    });
    return this.fetch({ case: "downloadStart", value: start }, (r) => (r.case === "download" ? r.value : undefined));
  }

  /**
   * The GDPR export of `userId`'s data (empty: the caller's own; another
   * user's: system admins only) as one tar archive: profile.json,
   * conversations.json, messages.jsonl, attachments/…, audit.jsonl and
   * manifest.json (each file's size and SHA-256).
   */
  async exportUserData(userId = ""): Promise<Exported> {
    const start = create(ExportUserDataSchema, { userId });
    return this.fetch({ case: "exportUserData", value: start }, (r) => (r.case === "exported" ? r.value : undefined));
  }

  /** Opens a transfer stream that only receives: `body`, the header reply (`pick`), then its `length` bytes. */
  private async fetch<H extends { length: bigint }>(
    body: Command["body"],
    pick: (r: Result) => H | undefined,
  ): Promise<{ ok: H; bytes: Uint8Array<ArrayBuffer> }> {
    const stream = await this.client.openStream();
    const writer = stream.writable.getWriter();
    await writer.write(header(body));
    // The server stops reading once it has the header (STOP_SENDING): a
    // close that loses that race changes nothing; its answer is what counts.
    await writer.close().catch(() => {});
    const { result, reader, rest } = await readAnswer(stream.readable);
    const ok = pick(result);
    if (!ok) throw new ClientError("protocol", `unexpected reply ${result.case ?? ""} on a ${body.case ?? ""} stream`);
    const parts: Uint8Array[] = rest.length ? [rest] : [];
    let got = rest.length;
    while (got < Number(ok.length)) {
      const { value, done } = await reader.read();
      if (done) throw new ClientError("transfer", `the transfer ended ${Number(ok.length) - got} bytes early`);
      parts.push(value);
      got += value.length;
    }
    return { ok, bytes: concat(parts) };
  }
}

/** The header frame of a transfer stream. */
function header(body: Command["body"]): Uint8Array<ArrayBuffer> {
  const command = create(CommandSchema, { id: 1n, body });
  return encodeClientFrame(create(ClientFrameSchema, { kind: { case: "command", value: command } }));
}

/** Reads the one Reply of a transfer stream; the reader and the bytes read past it. */
async function readAnswer(readable: ReadableStream<Uint8Array>): Promise<{
  result: Result;
  reader: ReadableStreamDefaultReader<Uint8Array>;
  rest: Uint8Array;
}> {
  const reader = readable.getReader();
  // Only the first frame is one: what follows it is raw data.
  const dec = new FrameDecoder();
  const seen: Uint8Array[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new ClientError("transfer", "the transfer stream ended without an answer");
    seen.push(value);
    dec.push(value);
    const body = dec.next();
    if (body === undefined) continue;
    const first = decodeServerFrame(body);
    if (first.kind.case !== "reply" || !first.kind.value.result) {
      throw new ClientError("protocol", "a transfer stream answers with a Reply");
    }
    const result = first.kind.value.result;
    if (result.case === "error") throw ClientError.server(wireError(result.value));
    // What followed the reply frame is data: the decoder holds exactly those bytes.
    const all = concat(seen);
    const rest = all.subarray(all.length - dec.buffered);
    return { result, reader, rest };
  }
}
