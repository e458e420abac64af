// Errors of the SDK, with the wire error classes of the protocol.

import { type Error as WireErrorProto, ErrorCode } from "../gen/chat/v1/chat_pb.js";

/** What a wire error code tells a client to do (by range, as `chat.proto` says). */
export type ErrorClass = "retry" | "request" | "reconnect" | "fatal" | "unknown";

export function errorClass(code: number): ErrorClass {
  if (code >= 1000 && code < 2000) return "retry";
  if (code >= 2000 && code < 3000) return "request";
  if (code >= 3000 && code < 4000) return "reconnect";
  if (code >= 4000 && code < 5000) return "fatal";
  return "unknown";
}

/** An error the server sent (reply, handshake refusal, goodbye or close code). */
export interface WireError {
  code: number;
  /** The code's name, e.g. "RATE_LIMITED". */
  name: string;
  message: string;
  retryAfterMs?: number;
  limit?: string;
}

export function codeName(code: number): string {
  return ErrorCode[code] ?? `CODE_${code}`;
}

export function wireError(e: WireErrorProto): WireError {
  const out: WireError = { code: e.code, name: codeName(e.code), message: e.message };
  if (e.retryAfterMs > 0n) out.retryAfterMs = Number(e.retryAfterMs);
  if (e.limit !== "") out.limit = e.limit;
  return out;
}

export type ClientErrorKind =
  | "server"
  | "disconnected"
  | "timeout"
  | "closed"
  | "connect"
  | "outbox_full"
  | "protocol"
  | "unsupported"
  | "transfer";

export class ClientError extends Error {
  constructor(
    readonly kind: ClientErrorKind,
    message: string,
    readonly wire?: WireError,
  ) {
    super(message);
    this.name = "ClientError";
  }

  static server(e: WireError): ClientError {
    return new ClientError("server", `${e.name}: ${e.message}`, e);
  }

  /** The wire error class, for server errors. */
  get errorClass(): ErrorClass {
    return this.wire ? errorClass(this.wire.code) : "unknown";
  }
}
