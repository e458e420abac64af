// What the Integrations screen (system admins only) does with the server:
// open and close it, and list, create, rotate and revoke the service
// accounts of the server API. The screen's fields become calls here, so
// the screen holds no protocol code.

import { type pb, ServiceAccounts } from "../src/sdk/index.js";
import { closeScreen, connectedClient, openScreen } from "./state.js";

/** Opens the Integrations screen over the chat. */
export const openIntegrations = (): void => openScreen("integrations");

/** Closes the Integrations screen. */
export const closeIntegrations = (): void => closeScreen("integrations");

/** Every service account, revoked ones included. */
export function listAccounts(): Promise<pb.ServiceAccount[]> {
  return new ServiceAccounts(connectedClient()).list();
}

/** Creates an account; its credential, shown once. */
export function createAccount(id: string, name: string, scopes: string[]): Promise<pb.ServiceAccountCredential> {
  return new ServiceAccounts(connectedClient()).create(id.trim(), name.trim(), scopes);
}

/** A new credential for `id`. */
export function rotateAccount(id: string): Promise<pb.ServiceAccountCredential> {
  return new ServiceAccounts(connectedClient()).rotate(id);
}

/** Revokes `id`. */
export function revokeAccount(id: string): Promise<pb.ServiceAccount> {
  return new ServiceAccounts(connectedClient()).revoke(id);
}
