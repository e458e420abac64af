// The app's icons, drawn here so the build needs no image tools: a speech
// bubble in the theme colour as small deterministic PNGs (the manifest's 192
// and 512 px icons and a maskable one whose drawing keeps to the safe zone).
import { crc32, deflateSync } from "node:zlib";

/** The theme colour of app.css (`--accent`). */
export const THEME = [0x1f, 0x5f, 0xbf];
const WHITE = [0xff, 0xff, 0xff];

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

/** An RGB PNG of `size`² pixels coloured by `pixel(x, y)` (coordinates 0..1). */
function png(size, pixel) {
  const raw = Buffer.alloc((size * 3 + 1) * size);
  for (let y = 0; y < size; y++) {
    const row = y * (size * 3 + 1);
    for (let x = 0; x < size; x++) raw.set(pixel((x + 0.5) / size, (y + 0.5) / size), row + 1 + x * 3);
  }
  const head = Buffer.alloc(13);
  head.writeUInt32BE(size, 0);
  head.writeUInt32BE(size, 4);
  head.set([8, 2, 0, 0, 0], 8);
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk("IHDR", head), chunk("IDAT", deflateSync(raw, { level: 9 })), chunk("IEND", Buffer.alloc(0))]);
}

/** Whether (x, y) is in the bubble drawn at `scale` (1: fills the icon, less: nearer the centre). */
function bubble(x, y, scale) {
  const u = (x - 0.5) / scale + 0.5;
  const v = (y - 0.5) / scale + 0.5;
  const inBody = ((u - 0.5) / 0.34) ** 2 + ((v - 0.45) / 0.26) ** 2 <= 1;
  const inTail = v >= 0.6 && v <= 0.82 && u >= 0.3 && u <= 0.3 + (0.82 - v) * 0.7;
  return inBody || inTail;
}

/** The icons: file name → PNG bytes. */
export function icons() {
  const draw = (scale) => (x, y) => (bubble(x, y, scale) ? WHITE : THEME);
  return {
    "icon-192.png": png(192, draw(1)),
    "icon-512.png": png(512, draw(1)),
    "icon-maskable.png": png(512, draw(0.75)),
  };
}
