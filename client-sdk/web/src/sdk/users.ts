// The user directory and session control over a connected Client: search
// people by name or id (everyone: the New conversation dialog's people
// picker), provision users, disable and enable them, revoke their sessions
// (admins), erase them (GDPR, admins, a reason required). A revoked or disabled user's client stops with a `disconnected`
// event carrying SESSION_REVOKED or USER_DISABLED and `willRetry: false`.
// See `SearchUsers` and `PutUser` in schemas/chat/v1/chat.proto.
import { create } from "@bufbuild/protobuf";
import {
  DisableUserSchema,
  type DirectoryUser,
  EnableUserSchema,
  EraseUserSchema,
  type EraseResult,
  PutUserSchema,
  RevokeSessionsSchema,
  type Role,
  SearchUsersSchema,
  type UserList,
} from "../gen/chat/v1/chat_pb.js";
import type { Client } from "./client.js";
import { ClientError } from "./errors.js";

/** The directory calls of one client. */
export class Users {
  constructor(private readonly client: Client) {}

  /** One page of people matching `query` (each word in the name or id); pass `next` back as `page`. */
  async search(query: string, opts: { limit?: number; page?: string } = {}): Promise<UserList> {
    const value = create(SearchUsersSchema, { query, limit: opts.limit ?? 0, page: opts.page ?? "" });
    const r = await this.client.request({ case: "searchUsers", value });
    if (r.case !== "users") throw new ClientError("protocol", "reply is not a user list");
    return r.value;
  }

  /** Admins: creates or replaces a user of the directory. */
  put(id: string, displayName: string, role: Role): Promise<DirectoryUser> {
    return this.user({ case: "putUser", value: create(PutUserSchema, { id, displayName, role }) });
  }

  /** Admins: disables a user (refused at connect; live sessions closed). */
  disable(userId: string, reason = ""): Promise<DirectoryUser> {
    return this.user({ case: "disableUser", value: create(DisableUserSchema, { userId, reason }) });
  }

  /** Admins: lets a disabled user sign in again. */
  enable(userId: string, reason = ""): Promise<DirectoryUser> {
    return this.user({ case: "enableUser", value: create(EnableUserSchema, { userId, reason }) });
  }

  /** Admins: closes every live session of a user (they may sign in again). */
  async revoke(userId: string, reason = ""): Promise<void> {
    await this.client.request({ case: "revokeSessions", value: create(RevokeSessionsSchema, { userId, reason }) });
  }

  /**
   * Admins: erases a user (GDPR): their messages become erased tombstones,
   * their attachments go, their profile is pseudonymised and disabled, their
   * sessions close. What a legal hold keeps is listed in the result.
   */
  async eraseUser(userId: string, reason: string): Promise<EraseResult> {
    const r = await this.client.request({ case: "eraseUser", value: create(EraseUserSchema, { userId, reason }) });
    if (r.case !== "erased") throw new ClientError("protocol", "reply is not an erase result");
    return r.value;
  }

  private async user(body: Parameters<Client["request"]>[0]): Promise<DirectoryUser> {
    const r = await this.client.request(body);
    if (r.case !== "user") throw new ClientError("protocol", "reply is not a directory user");
    return r.value;
  }
}
