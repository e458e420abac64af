// Length-delimited frames: a varint length prefix, then one protobuf message,
// exactly as `chat_protocol::codec` on the Rust side. The decoder takes bytes
// split anywhere, never buffers more than one frame's worth, and refuses a
// frame whose announced length is over its limit.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type ClientFrame,
  ClientFrameSchema,
  type ServerFrame,
  ServerFrameSchema,
} from "../gen/chat/v1/chat_pb.js";

/** Longest varint length prefix accepted (a u32 fits in 5 bytes). */
const MAX_PREFIX = 5;

/** Longest server frame a client accepts (a page of history fits); the Rust SDK's limit. */
export const MAX_SERVER_FRAME = 4 * 1024 * 1024;
/** Longest client frame the server accepts. */
export const MAX_CLIENT_FRAME = 64 * 1024;

/** Why bytes could not be taken as frames. The stream cannot be trusted afterwards. */
export class FrameError extends Error {
  constructor(
    message: string,
    readonly kind: "too_large" | "bad_prefix",
  ) {
    super(message);
    this.name = "FrameError";
  }
}

/** Appends the varint encoding of `n` (< 2^32) to `out`. */
function writeVarint(n: number, out: number[]): void {
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
}

/** Prefixes one encoded message with its length. */
export function frameBytes(body: Uint8Array): Uint8Array<ArrayBuffer> {
  const prefix: number[] = [];
  writeVarint(body.length, prefix);
  const out = new Uint8Array(prefix.length + body.length);
  out.set(prefix, 0);
  out.set(body, prefix.length);
  return out;
}

/** One `ClientFrame` as a length-delimited frame. */
export function encodeClientFrame(frame: ClientFrame): Uint8Array<ArrayBuffer> {
  return frameBytes(toBinary(ClientFrameSchema, frame));
}

/** One `ServerFrame` as a length-delimited frame (tests and tools). */
export function encodeServerFrame(frame: ServerFrame): Uint8Array<ArrayBuffer> {
  return frameBytes(toBinary(ServerFrameSchema, frame));
}

/** Decodes one unprefixed `ServerFrame` (a datagram). */
export function decodeServerFrame(bytes: Uint8Array): ServerFrame {
  return fromBinary(ServerFrameSchema, bytes);
}

/** Concatenates byte arrays. */
export function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Incremental decoder of length-delimited frames. `push` bytes as they come;
 * `next` returns whole frame bodies (without their prefix) or `undefined` when
 * more bytes are needed. A frame over `maxFrame` or a bad prefix throws
 * `FrameError` (the connection is then dropped: the server never sends one).
 */
export class FrameDecoder {
  private buf: Uint8Array = new Uint8Array(0);
  private start = 0;

  constructor(readonly maxFrame: number = MAX_SERVER_FRAME) {}

  /** Bytes buffered and not yet returned as frames. */
  get buffered(): number {
    return this.buf.length - this.start;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const rest = this.buf.subarray(this.start);
    if (rest.length === 0) {
      this.buf = chunk.slice();
    } else {
      this.buf = concat([rest, chunk]);
    }
    this.start = 0;
  }

  next(): Uint8Array | undefined {
    const avail = this.buf.length - this.start;
    let len = 0;
    let prefix = 0;
    let done = false;
    for (let i = 0; i < Math.min(avail, MAX_PREFIX); i++) {
      const b = this.buf[this.start + i]!;
      len += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) {
        prefix = i + 1;
        done = true;
        break;
      }
    }
    if (!done) {
      if (avail >= MAX_PREFIX) throw new FrameError("invalid frame length prefix", "bad_prefix");
      return undefined;
    }
    if (len > this.maxFrame) {
      throw new FrameError(`frame of ${len} bytes is over the ${this.maxFrame}-byte limit`, "too_large");
    }
    if (avail < prefix + len) return undefined;
    const from = this.start + prefix;
    const frame = this.buf.subarray(from, from + len);
    this.start = from + len;
    if (this.start === this.buf.length) {
      this.buf = new Uint8Array(0);
      this.start = 0;
    }
    return frame;
  }

  /** Every whole frame now available. */
  drain(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let f = this.next(); f !== undefined; f = this.next()) out.push(f);
    return out;
  }
}

/** Decodes `ServerFrame`s from a byte stream split anywhere. */
export class ServerFrameReader {
  private dec: FrameDecoder;
  constructor(maxFrame = MAX_SERVER_FRAME) {
    this.dec = new FrameDecoder(maxFrame);
  }
  push(chunk: Uint8Array): ServerFrame[] {
    this.dec.push(chunk);
    return this.dec.drain().map((b) => fromBinary(ServerFrameSchema, b));
  }
  get buffered(): number {
    return this.dec.buffered;
  }
}

export { create };
