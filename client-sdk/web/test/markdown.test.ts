import type { ComponentChildren, VNode } from "preact";
import { describe, expect, it } from "vitest";
import { type Inline, parse, plainText, renderMarkdown, safeHref } from "../app/markdown.js";

/** A minimal DOM tree built from the renderer's virtual nodes; it has no HTML parser at all. */
class FakeNode {
  children: FakeNode[] = [];
  attrs: Record<string, string> = {};
  constructor(
    readonly tag: string,
    public text = "",
  ) {}
  appendChild(n: FakeNode) {
    this.children.push(n);
    return n;
  }
  setAttribute(k: string, v: string) {
    this.attrs[k] = v;
  }
  set textContent(v: string) {
    this.children = [new FakeNode("#text", v)];
  }
  get textContent(): string {
    return this.tag === "#text" ? this.text : this.children.map((c) => c.textContent).join("");
  }
  find(tag: string): FakeNode[] {
    return [...(this.tag === tag ? [this] : []), ...this.children.flatMap((c) => c.find(tag))];
  }
}
/** Builds what Preact would: strings become text nodes, props become attributes, fragments vanish. */
function build(c: ComponentChildren, parent: FakeNode): void {
  if (c === null || c === undefined || typeof c === "boolean") return;
  if (Array.isArray(c)) {
    for (const x of c) build(x, parent);
    return;
  }
  if (typeof c === "string" || typeof c === "number" || typeof c === "bigint") {
    parent.appendChild(new FakeNode("#text", String(c)));
    return;
  }
  const v = c as VNode<Record<string, unknown>>;
  if (typeof v.type !== "string") {
    build(v.props.children as ComponentChildren, parent);
    return;
  }
  const el = new FakeNode(v.type);
  for (const [k, val] of Object.entries(v.props)) if (k !== "children") el.setAttribute(k, String(val));
  build(v.props.children as ComponentChildren, el);
  parent.appendChild(el);
}
const render = (s: string) => {
  const frag = new FakeNode("#fragment");
  build(renderMarkdown(s), frag);
  return frag;
};
const ALLOWED = new Set(["#fragment", "#text", "p", "br", "strong", "em", "code", "pre", "a", "ul", "ol", "li"]);
const tags = (n: FakeNode): string[] => [n.tag, ...n.children.flatMap(tags)];

describe("markdown subset", () => {
  it("renders bold, italic, code, links and lists", () => {
    const r = render("**bold** and *it* and _it2_ and `x<y>`\n- one\n- **two**\n\n1. first\n2. second");
    expect(r.find("strong").map((n) => n.textContent)).toEqual(["bold", "two"]);
    expect(r.find("em").map((n) => n.textContent)).toEqual(["it", "it2"]);
    expect(r.find("code")[0]!.textContent).toBe("x<y>");
    expect(r.find("ul")[0]!.children.length).toBe(2);
    expect(r.find("ol")[0]!.children.length).toBe(2);
  });

  it("keeps http(s) links with rel=noopener noreferrer", () => {
    const r = render("see [the docket](https://court.example/d?id=1&x=2) or http://a.example/x.");
    const links = r.find("a");
    expect(links.map((a) => a.attrs.href)).toEqual(["https://court.example/d?id=1&x=2", "http://a.example/x"]);
    for (const a of links) expect(a.attrs.rel).toContain("noopener noreferrer");
  });

  it("renders a fenced code block verbatim", () => {
    const r = render("```\n<script>alert(1)</script>\n**not bold**\n```");
    expect(r.find("pre")[0]!.textContent).toBe("<script>alert(1)</script>\n**not bold**");
    expect(r.find("strong")).toEqual([]);
  });

  const hostile = [
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=1</script>",
    "[click](javascript:window.__pwned=1)",
    "[click](JaVaScRiPt:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox)",
    "javascript:alert(1)",
    '<a href="javascript:alert(1)">x</a>',
    "**<svg onload=alert(1)>**",
    "[a](https://ok.example) [b](javascript:alert(1))",
    '<iframe src="https://evil.example"></iframe>',
    "`<b>` <style>body{display:none}</style>",
  ];

  it.each(hostile)("shows hostile input as text: %s", (s) => {
    const r = render(s);
    for (const t of tags(r)) expect(ALLOWED.has(t)).toBe(true);
    for (const a of r.find("a")) expect(a.attrs.href).toMatch(/^https?:\/\//);
    // Every character typed is still there as text (only markup syntax is consumed).
    const visible = r.textContent.replace(/\s/g, "");
    for (const frag of ["<", ">"].filter((c) => s.includes(c))) expect(visible).toContain(frag);
  });

  it("never produces a non-http link in the tree", () => {
    const walk = (ns: Inline[]): string[] =>
      ns.flatMap((n) => (n.t === "link" ? [n.href, ...walk(n.children)] : "children" in n ? walk(n.children) : []));
    for (const s of hostile) {
      for (const b of parse(s)) {
        const hrefs = b.t === "p" ? walk(b.children) : b.t === "pre" ? [] : b.items.flatMap(walk);
        for (const h of hrefs) expect(h).toMatch(/^https?:/);
      }
    }
  });

  it("previews drop the markup, not the text", () => {
    expect(plainText("**Bold** and `code`\n- one\n- two")).toBe("Bold and code one, two");
    expect(plainText("<b>x</b> [a](javascript:alert(1))")).toBe("<b>x</b> [a](javascript:alert(1))");
  });

  it("safeHref accepts only absolute http(s)", () => {
    expect(safeHref("https://x.example/a")).toBe("https://x.example/a");
    expect(safeHref("javascript:alert(1)")).toBeUndefined();
    expect(safeHref(" javascript:alert(1)")).toBeUndefined();
    expect(safeHref("//evil.example")).toBeUndefined();
    expect(safeHref("/relative")).toBeUndefined();
    expect(safeHref("data:text/html,x")).toBeUndefined();
  });

  it("terminates on pathological input", () => {
    const s = "*".repeat(5000) + "_".repeat(5000) + "[".repeat(2000) + "`".repeat(3000);
    const t0 = Date.now();
    render(s);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

describe("no HTML sinks in the app or the SDK", () => {
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => {
      const p = join(dir, f);
      return statSync(p).isDirectory() ? files(p) : /\.tsx?$/.test(p) ? [p] : [];
    });
  it.each([...files("app"), ...files("src/sdk")])("%s", (file) => {
    const src = readFileSync(file, "utf8");
    for (const sink of ["dangerouslySetInnerHTML", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc", "createContextualFragment"]) {
      expect(src.includes(sink), `${file} uses ${sink}`).toBe(false);
    }
  });
});
