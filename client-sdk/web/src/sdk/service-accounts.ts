// Service accounts of the server API over a connected Client, for system
// admins (anyone else is refused with FORBIDDEN): list them, create one
// (its credential is answered once), rotate its credential, revoke it. The
// same operations as `chatd service-accounts`; see `ServiceAccount` in
// schemas/chat/v1/chat.proto and README "Integrate".
import { create } from "@bufbuild/protobuf";
import {
  CreateServiceAccountSchema,
  ListServiceAccountsSchema,
  RevokeServiceAccountSchema,
  RotateServiceAccountSchema,
  type ServiceAccount,
  type ServiceAccountCredential,
} from "../gen/chat/v1/chat_pb.js";
import type { Client } from "./client.js";
import { ClientError } from "./errors.js";

/** The scopes an account may have. */
export const SCOPES = ["read", "write", "admin"] as const;

/** The service-account calls of one client. */
export class ServiceAccounts {
  constructor(private readonly client: Client) {}

  /** Every account, revoked ones included, by id. */
  async list(): Promise<ServiceAccount[]> {
    return accounts(await this.client.request({ case: "listServiceAccounts", value: create(ListServiceAccountsSchema, {}) }));
  }

  /** Creates an account; its credential is in the answer, this once. */
  async create(id: string, displayName: string, scopes: string[]): Promise<ServiceAccountCredential> {
    const value = create(CreateServiceAccountSchema, { id, displayName, scopes });
    return credential(await this.client.request({ case: "createServiceAccount", value }));
  }

  /** A new credential for `id` (the old one stops at once). */
  async rotate(id: string): Promise<ServiceAccountCredential> {
    return credential(await this.client.request({ case: "rotateServiceAccount", value: create(RotateServiceAccountSchema, { id }) }));
  }

  /** Revokes `id` for good; the account as revoked. */
  async revoke(id: string): Promise<ServiceAccount> {
    const list = accounts(await this.client.request({ case: "revokeServiceAccount", value: create(RevokeServiceAccountSchema, { id }) }));
    const a = list[0];
    if (!a) throw new ClientError("protocol", "the revocation answered no account");
    return a;
  }
}

function accounts(r: Awaited<ReturnType<Client["request"]>>): ServiceAccount[] {
  if (r.case !== "serviceAccounts") throw new ClientError("protocol", "reply is not a list of service accounts");
  return r.value.accounts;
}

function credential(r: Awaited<ReturnType<Client["request"]>>): ServiceAccountCredential {
  if (r.case !== "serviceAccountCredential") throw new ClientError("protocol", "reply is not a credential");
  return r.value;
}
