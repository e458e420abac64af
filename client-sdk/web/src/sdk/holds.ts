// Legal holds over a connected Client, for system admins (anyone else is
// refused with FORBIDDEN): list the holds in force, set (or renew) one on a
// conversation, a user or a case, and release one; and erase a whole
// conversation, which a hold refuses. While a hold is in force nothing under
// it is purged by retention or erased. The same calls as the Rust SDK's
// `set_legal_hold`, `release_legal_hold`, `list_legal_holds` and
// `erase_conversation`; see `LegalHold` and `EraseConversation` in
// schemas/chat/v1/chat.proto.
import { create } from "@bufbuild/protobuf";
import {
  type ConversationErased,
  EraseConversationSchema,
  type HoldScope,
  type LegalHold,
  ListLegalHoldsSchema,
  ReleaseLegalHoldSchema,
  SetLegalHoldSchema,
} from "../gen/chat/v1/chat_pb.js";
import type { Client } from "./client.js";
import { ClientError } from "./errors.js";

/** The legal-hold calls of one client. */
export class LegalHolds {
  constructor(private readonly client: Client) {}

  /** Every hold in force, by scope then target. */
  async list(): Promise<LegalHold[]> {
    return holds(await this.client.request({ case: "listLegalHolds", value: create(ListLegalHoldsSchema, {}) }));
  }

  /** Sets (or renews) a hold; returns every hold in force. `target`: a conversation id, user id or case id. */
  async set(scope: HoldScope, target: string, reason: string): Promise<LegalHold[]> {
    const value = create(SetLegalHoldSchema, { scope, target, reason });
    return holds(await this.client.request({ case: "setLegalHold", value }));
  }

  /** Releases a hold (HOLD_NOT_FOUND when none is in force for that scope and target). */
  async release(scope: HoldScope, target: string): Promise<void> {
    await this.client.request({ case: "releaseLegalHold", value: create(ReleaseLegalHoldSchema, { scope, target }) });
  }

  /**
   * Erases a whole conversation: archived for good, every message,
   * attachment and search entry gone, its data key destroyed
   * (UNDER_LEGAL_HOLD while a hold covers it; ERASE_REASON_REQUIRED without a reason).
   */
  async eraseConversation(conversationId: bigint, reason: string): Promise<ConversationErased> {
    const value = create(EraseConversationSchema, { conversationId, reason });
    const r = await this.client.request({ case: "eraseConversation", value });
    if (r.case !== "conversationErased") throw new ClientError("protocol", "reply is not a conversation's erasure");
    return r.value;
  }
}

function holds(r: Awaited<ReturnType<Client["request"]>>): LegalHold[] {
  if (r.case !== "legalHolds") throw new ClientError("protocol", "reply is not a list of legal holds");
  return r.value.holds;
}
