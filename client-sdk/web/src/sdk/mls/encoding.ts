// Small encodings of the MLS device: records as JSON bytes, bytes as base64 and hex, a group's
// leaves as `user/device` identities, and the safety number of a device (the
// Rust SDK's `safety_number`, digit for digit).

import type { RatchetTree } from "ts-mls";

/** Bytes as base64. */
export function b64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Base64 as bytes. */
export function fromB64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A record as the bytes the device's store keeps (JSON). */
export function toJson(v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v));
}

/** A record the device's store kept (its reader knows the record's shape). */
export function fromJson(bytes: Uint8Array): any {
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** Bytes as lowercase hex. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A leaf of a group: its index, the user and device its basic credential names, its signing key. */
export interface Leaf {
  leafIndex: number;
  user: string;
  device: string;
  signatureKey: Uint8Array;
}

/** The group's leaves that name a `user/device` (blank leaves and other credentials left out). */
export function leaves(tree: RatchetTree): Leaf[] {
  const out: Leaf[] = [];
  for (let i = 0; i < tree.length; i += 2) {
    const node = tree[i];
    if (node?.nodeType !== "leaf" || node.leaf.credential.credentialType !== "basic") continue;
    const id = new TextDecoder().decode(node.leaf.credential.identity);
    const slash = id.indexOf("/");
    if (slash < 0) continue;
    out.push({ leafIndex: i / 2, user: id.slice(0, slash), device: id.slice(slash + 1), signatureKey: node.leaf.signaturePublicKey });
  }
  return out;
}

/** Twelve groups of five digits from SHA-256("chatd safety number\0" identity "\0" signing key). */
export async function safetyNumber(identity: string, signatureKey: Uint8Array): Promise<string> {
  const parts = [new TextEncoder().encode("chatd safety number\0"), new TextEncoder().encode(identity), new Uint8Array([0]), signatureKey];
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", all as BufferSource));
  const groups: string[] = [];
  for (let i = 0; i < 24; i += 2) groups.push(String(((d[i]! << 8) | d[i + 1]!) % 100_000).padStart(5, "0"));
  return groups.join(" ");
}
