// Search snippets: the server's UTF-8 byte ranges become plain and marked
// parts at the right characters, whatever the script; bad ranges never throw.
import { describe, expect, it } from "vitest";
import { snippetParts } from "../app/snippet.js";

describe("snippetParts", () => {
  it("marks the matched words by byte ranges, multi-byte text included", () => {
    const s = "Überweisung für den retainer — bitte prüfen";
    const start = new TextEncoder().encode("Überweisung für den ").length;
    const end = start + "retainer".length;
    expect(snippetParts(s, [{ start, end }])).toEqual([
      { text: "Überweisung für den ", mark: false },
      { text: "retainer", mark: true },
      { text: " — bitte prüfen", mark: false },
    ]);
  });

  it("clamps ranges past the end and ignores overlapping ones", () => {
    expect(snippetParts("abc", [{ start: 1, end: 99 }, { start: 0, end: 2 }])).toEqual([
      { text: "a", mark: false },
      { text: "bc", mark: true },
    ]);
    expect(snippetParts("abc", [])).toEqual([{ text: "abc", mark: false }]);
  });
});
