// Attachments in the web app, two real browsers over WebTransport and again
// over the WebSocket fallback (chat.mux.v1 streams): Ann attaches a PDF (the
// paper clip) and a PNG, sees them upload, sends them with a line; Ben sees
// the document's chip (name, type, size) and the image's server-made
// thumbnail, and downloads the PDF byte for byte.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { deflateSync } from "node:zlib";
import { BrowserUser, chatdForFile, NO_WEBTRANSPORT } from "./harness.mjs";

const ctx = chatdForFile();

/** A `size`x`size` RGB PNG with a diagonal gradient. */
function png(size) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < size; y++) {
    const row = Buffer.alloc(1 + size * 3);
    for (let x = 0; x < size; x++) row.set([(x * 4) & 255, (y * 4) & 255, ((x + y) * 2) & 255], 1 + x * 3);
    rows.push(row);
  }
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk("IHDR", ihdr), chunk("IDAT", deflateSync(Buffer.concat(rows))), chunk("IEND", Buffer.alloc(0))]);
}

const PDF = Buffer.from(
  "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n" +
    "trailer << /Root 1 0 R >>\n%%EOF\n" +
    "x".repeat(200_000),
);

async function pair(suffix, initScript) {
  const ann = await BrowserUser.open(`ann-${suffix}`, { initScript });
  const ben = await BrowserUser.open(`ben-${suffix}`, { initScript });
  ctx.users.push(ann, ben);
  await ann.signIn(ctx.chatd, ctx.chatd.token(`ann-${suffix}`, "advocate", "Ann Advocate"));
  await ben.signIn(ctx.chatd, ctx.chatd.token(`ben-${suffix}`, "client", "Ben Client"));
  await ann.createPrivate(`ben-${suffix}`);
  await ben.page.locator(".conv").first().click();
  await ben.page.locator("#chat-title").waitFor();
  return { ann, ben };
}

async function pdfAndImage(suffix, initScript, transport) {
  const { ann, ben } = await pair(suffix, initScript);
  assert.equal(await ann.transport(), transport);
  assert.equal(await ben.transport(), transport);
  await ann.page.setInputFiles("#attach-input", [
    { name: "engagement-letter.pdf", mimeType: "application/pdf", buffer: PDF },
    { name: "site-photo.png", mimeType: "image/png", buffer: png(96) },
  ]);
  // Both stored: the tray shows them done (no progress bar left).
  await ann.page.locator(".upload.done").nth(1).waitFor({ timeout: 20_000 });
  assert.equal(await ann.page.locator(".upload progress").count(), 0);
  await ann.send("The signed letter and a photo of the site");
  await ann.waitForMessage("The signed letter");
  assert.equal(await ann.page.locator(".upload").count(), 0, "the tray empties when they are sent");
  // The sender sees what she sent at once, without a reload.
  await ann.page.locator(".file-chip[data-name='engagement-letter.pdf']").waitFor({ timeout: 5_000 });
  await ann.page.locator(".attachment.image img[alt='site-photo.png']").waitFor({ timeout: 5_000 });

  await ben.waitForMessage("The signed letter");
  const chip = ben.page.locator(".file-chip[data-name='engagement-letter.pdf']");
  await chip.waitFor();
  assert.match(await chip.textContent(), /PDF.*engagement-letter\.pdf.*KB/);
  const img = ben.page.locator(".attachment.image img[alt='site-photo.png']");
  await img.waitFor({ timeout: 15_000 });
  await ben.page.waitForFunction(() => document.querySelector(".attachment.image img")?.naturalWidth > 0);
  const [download] = await Promise.all([ben.page.waitForEvent("download"), chip.click()]);
  assert.equal(download.suggestedFilename(), "engagement-letter.pdf");
  const got = readFileSync(await download.path());
  assert.ok(got.equals(PDF), `the downloaded PDF is the uploaded one (${got.length} of ${PDF.length} bytes)`);
}

test("a PDF and an image go from one browser to the other over WebTransport", { timeout: 120_000 }, async () => {
  await pdfAndImage("wt", undefined, "webtransport");
});

test("a PDF and an image go from one browser to the other over the WebSocket fallback", { timeout: 120_000 }, async () => {
  await pdfAndImage("ws", NO_WEBTRANSPORT, "websocket");
});

test("a disallowed file is refused precisely and a message still goes", { timeout: 120_000 }, async () => {
  const { ann, ben } = await pair("refused");
  await ann.page.setInputFiles("#attach-input", [
    { name: "tool.exe", mimeType: "application/octet-stream", buffer: Buffer.concat([Buffer.from("MZ"), Buffer.alloc(4096)]) },
  ]);
  const failed = ann.page.locator(".upload.failed .error");
  await failed.waitFor({ timeout: 20_000 });
  assert.match(await failed.textContent(), /^[A-Z_]+: /, "the server's error code and reason");
  await ann.page.getByRole("button", { name: "Remove tool.exe" }).click();
  await ann.send("No attachment after all");
  await ben.waitForMessage("No attachment after all");
});
