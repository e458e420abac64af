// A search hit's snippet as plain and matched parts: the server marks
// matches by UTF-8 byte ranges; the app renders the parts as text and <mark>
// elements, never as markup.

import type { pb } from "../src/sdk/index.js";

/** A snippet as plain and matched parts, in order. */
export function snippetParts(snippet: string, highlights: readonly Pick<pb.Highlight, "start" | "end">[]): { text: string; mark: boolean }[] {
  const bytes = new TextEncoder().encode(snippet);
  const dec = new TextDecoder();
  const out: { text: string; mark: boolean }[] = [];
  let at = 0;
  for (const h of highlights) {
    const start = Math.max(at, Math.min(h.start, bytes.length));
    const end = Math.max(start, Math.min(h.end, bytes.length));
    if (start > at) out.push({ text: dec.decode(bytes.subarray(at, start)), mark: false });
    if (end > start) out.push({ text: dec.decode(bytes.subarray(start, end)), mark: true });
    at = end;
  }
  if (at < bytes.length) out.push({ text: dec.decode(bytes.subarray(at)), mark: false });
  return out;
}

