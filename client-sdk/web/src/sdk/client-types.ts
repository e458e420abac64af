// The public types of the TypeScript SDK's client: its configuration, its
// connection states and the events it emits (see client.ts for the behaviour).

import type {
  ClientFrame,
  ConversationSummary,
  MembershipEvent,
  Message,
  PresenceEvent,
  ReceiptEvent,
  TypingEvent,
  User,
} from "../gen/chat/v1/chat_pb.js";
import type { BackoffConfig } from "./backoff.js";
import type { ResumeState } from "./delivery.js";
import type { WireError } from "./errors.js";
import type { Link, TransportKind } from "./transport.js";

export const PROTOCOL_VERSION = 1;
export const SDK_VERSION = "0.1.0";

export interface ClientConfig {
  /** The JWT sent in Hello. */
  token: string;
  /**
   * Gives a fresh token (e.g. from the identity provider) before the
   * session's lapses: the client calls it `refreshLeadMs` before the
   * Welcome's `tokenExpiresAtMs`, hands the result to the server
   * (`RefreshToken`) and signs in with it on later reconnections. Without
   * it the session ends with TOKEN_EXPIRED when the token lapses.
   */
  tokenProvider?: () => Promise<string>;
  /** How long before the token lapses to refresh it, ms (default 60000). */
  refreshLeadMs?: number;
  /** e.g. "https://localhost:4433/chat". */
  webtransportUrl?: string;
  /** e.g. "ws://localhost:8080/ws". */
  websocketUrl?: string;
  /** SHA-256 digests (hex) of the certificates WebTransport accepts (dev certificates). */
  certHashes?: string[];
  /** "auto" (default): WebTransport, falling back to WebSocket. */
  transport?: "auto" | TransportKind;
  /** How long WebTransport may take to open before the fallback, ms (default 4000). */
  webtransportTimeoutMs?: number;
  backoff?: BackoffConfig;
  /** How long a request (other than a send) waits for its reply, connection included (default 10 s). */
  requestTimeoutMs?: number;
  /** Most sends waiting for their ack (default 1024). */
  outboxCapacity?: number;
  /** Most requests waiting for a connection (default 256). */
  maxDeferred?: number;
  /** Persisted state to resume from on the first connection. */
  resume?: ResumeState;
  /** Free-form client name for the server's logs. */
  clientName?: string;
  /**
   * Replaces the built-in transports: opens a connection, says `hello` and
   * resolves with the handshaken link, or rejects with a `Lost`. For tests
   * and custom transports.
   */
  openLink?: (hello: ClientFrame) => Promise<Link>;
}

export type ConnectionState = "connecting" | "online" | "offline" | "closed";

/** Something that happened on the connection or in a conversation. */
export type ChatEvent =
  | { type: "connected"; sessionId: bigint; node: string; resumed: boolean; transport: TransportKind; user: User | undefined }
  | { type: "disconnected"; reason: string; error?: WireError; willRetry: boolean }
  | { type: "state"; state: ConnectionState }
  | { type: "message"; message: Message }
  | { type: "receipt"; receipt: ReceiptEvent }
  | { type: "typing"; typing: TypingEvent }
  | { type: "presence"; presence: PresenceEvent }
  | { type: "membership"; membership: MembershipEvent }
  | { type: "conversation"; summary: ConversationSummary }
  | { type: "caught_up" }
  | { type: "resync"; reason: string }
  | { type: "goodbye"; error?: WireError };

export type Listener = (e: ChatEvent) => void;
