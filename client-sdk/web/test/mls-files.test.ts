// Files of E2E messages in the browser: sealed under a fresh key, opened
// only with it, and checked against the SHA-256 the sender put in the MLS
// message (the Rust SDK's `mls/files.rs` makes and opens the same).
import { describe, expect, it } from "vitest";
import { openFile, sealFile } from "../src/sdk/mls/files.js";

const plain = new TextEncoder().encode("%PDF-1.7 privileged");

describe("E2E files", () => {
  it("open with their key only, and are checked", async () => {
    const { sealed, file } = await sealFile("brief.pdf", "application/pdf", plain);
    expect(new TextDecoder().decode(sealed)).not.toContain("privileged");
    expect(sealed.length).toBe(plain.length + 16);
    expect(file).toMatchObject({ name: "brief.pdf", mediaType: "application/pdf", size: BigInt(plain.length) });
    expect(file.key.length).toBe(32);
    expect(await openFile(file, sealed)).toEqual(plain);

    const tampered = sealed.slice();
    tampered[3]! ^= 1;
    await expect(openFile(file, tampered)).rejects.toThrow(/does not open with its key/);
    const other = await sealFile("x", "text/plain", plain);
    await expect(openFile({ ...file, key: other.file.key }, sealed)).rejects.toThrow(/does not open with its key/);
    await expect(openFile({ ...file, sha256: new Uint8Array(32) }, sealed)).rejects.toThrow(/SHA-256 differs/);
    await expect(openFile({ ...file, key: new Uint8Array(5) }, sealed)).rejects.toThrow(/not 32 bytes/);
  });
});
