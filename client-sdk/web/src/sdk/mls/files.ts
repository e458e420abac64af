// Files of end-to-end encrypted messages, as the Rust SDK's `mls/files.rs`
// makes them: each sealed on the device with AES-256-GCM under a fresh key
// and nonce (WebCrypto), uploaded as "application/vnd.chatd.e2e-encrypted"
// under a neutral name, and its key, real name, type, size and SHA-256
// carried inside the MLS message (`E2eFile`); a recipient downloads the
// ciphertext, opens it and checks the SHA-256.

import { create } from "@bufbuild/protobuf";
import { type E2eFile, E2eFileSchema } from "../../gen/chat/v1/chat_pb.js";

/** The media type of every file in an E2E conversation (the server takes no other there). */
export const E2E_MEDIA_TYPE = "application/vnd.chatd.e2e-encrypted";
/** The name the server sees. */
export const NEUTRAL_NAME = "encrypted.bin";

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
}

function aesKey(raw: Uint8Array, use: KeyUsage): Promise<CryptoKey> {
  if (raw.length !== 32) throw new Error("a file key is not 32 bytes");
  return crypto.subtle.importKey("raw", raw as BufferSource, "AES-GCM", false, [use]);
}

/** Seals `plain` under a fresh key: the ciphertext (tag appended) and what opens it (no attachment id yet). */
export async function sealFile(name: string, mediaType: string, plain: Uint8Array): Promise<{ sealed: Uint8Array; file: E2eFile }> {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, await aesKey(key, "encrypt"), plain as BufferSource);
  const file = create(E2eFileSchema, { name, mediaType, size: BigInt(plain.length), sha256: await sha256(plain), key, nonce });
  return { sealed: new Uint8Array(ct), file };
}

/** Opens a downloaded file's ciphertext and checks it is the file sent. */
export async function openFile(file: E2eFile, sealed: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  if (file.nonce.length !== 12) throw new Error("a file nonce is not 12 bytes");
  const key = await aesKey(file.key, "decrypt");
  let plain: Uint8Array<ArrayBuffer>;
  try {
    plain = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: file.nonce as BufferSource }, key, sealed as BufferSource));
  } catch {
    throw new Error("the file does not open with its key (damaged or replaced)");
  }
  const digest = await sha256(plain);
  if (digest.length !== file.sha256.length || digest.some((b, i) => b !== file.sha256[i])) {
    throw new Error("the file opened but is not the one sent (SHA-256 differs)");
  }
  return plain;
}
