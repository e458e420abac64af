// The rich-text subset of chat messages: Markdown without raw HTML. A tiny
// parser turns text into a tree; the renderer turns it into Preact virtual
// nodes of a few fixed elements whose only content is strings, which Preact
// writes as text nodes. Nothing a user types is ever parsed as
// HTML: `<b>` stays the four characters `<b>`. Links are kept only for
// http(s) URLs and open with rel="noopener noreferrer".
//
// Supported: **bold**, *italic* / _italic_, `inline code`, fenced code blocks
// (```), [links](https://...), bare https:// URLs, "- " / "* " and "1. " lists.

import { type ComponentChild, Fragment, h, type VNode } from "preact";

export type Inline =
  | { t: "text"; text: string }
  | { t: "br" }
  | { t: "strong"; children: Inline[] }
  | { t: "em"; children: Inline[] }
  | { t: "code"; text: string }
  | { t: "link"; href: string; children: Inline[] };

export type Block =
  | { t: "p"; children: Inline[] }
  | { t: "pre"; text: string }
  | { t: "ul" | "ol"; items: Inline[][] };

/** The href to use for `url`, or undefined when it is not an absolute http(s) URL. */
export function safeHref(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url.trim());
  } catch {
    return undefined;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return undefined;
  return u.href;
}

interface Rule {
  re: RegExp;
  make(m: RegExpExecArray, depth: number): Inline[];
}

const MAX_DEPTH = 4;

const RULES: Rule[] = [
  { re: /`([^`\n]+)`/, make: (m) => [{ t: "code", text: m[1]! }] },
  {
    re: /\[([^\]\n]+)\]\(([^)\s]+)\)/,
    make: (m, d) => {
      const href = safeHref(m[2]!);
      // An unsafe link stays exactly what was typed, as text.
      if (href === undefined) return [{ t: "text", text: m[0] }];
      return [{ t: "link", href, children: inline(m[1]!, d + 1, false) }];
    },
  },
  {
    re: /https?:\/\/[^\s<>()[\]"'`]+[^\s<>()[\]"'`.,;:!?]/,
    make: (m) => {
      const href = safeHref(m[0]);
      return href === undefined ? [{ t: "text", text: m[0] }] : [{ t: "link", href, children: [{ t: "text", text: m[0] }] }];
    },
  },
  { re: /\*\*([^*\n](?:[^\n]*?[^*\n])?)\*\*/, make: (m, d) => [{ t: "strong", children: inline(m[1]!, d + 1, true) }] },
  { re: /\*([^*\s](?:[^*\n]*?[^*\s])?)\*/, make: (m, d) => [{ t: "em", children: inline(m[1]!, d + 1, true) }] },
  { re: /(?<![\w])_([^_\s](?:[^_\n]*?[^_\s])?)_(?![\w])/, make: (m, d) => [{ t: "em", children: inline(m[1]!, d + 1, true) }] },
];

function pushText(out: Inline[], text: string): void {
  if (text === "") return;
  const parts = text.split("\n");
  parts.forEach((p, i) => {
    if (i > 0) out.push({ t: "br" });
    if (p === "") return;
    const last = out[out.length - 1];
    if (last && last.t === "text") last.text += p;
    else out.push({ t: "text", text: p });
  });
}

/** Parses inline markup. `links` false inside a link's text (no nested links). */
export function inline(text: string, depth = 0, links = true): Inline[] {
  const out: Inline[] = [];
  if (depth > MAX_DEPTH) {
    pushText(out, text);
    return out;
  }
  let rest = text;
  while (rest.length > 0) {
    let best: { m: RegExpExecArray; rule: Rule } | undefined;
    for (const rule of RULES) {
      if (!links && rule.make === RULES[1]!.make) continue;
      if (!links && rule.make === RULES[2]!.make) continue;
      const m = rule.re.exec(rest);
      if (m && (best === undefined || m.index < best.m.index)) best = { m, rule };
    }
    if (!best) {
      pushText(out, rest);
      break;
    }
    pushText(out, rest.slice(0, best.m.index));
    for (const node of best.rule.make(best.m, depth)) {
      if (node.t === "text") pushText(out, node.text);
      else out.push(node);
    }
    rest = rest.slice(best.m.index + best.m[0].length);
  }
  return out;
}

const UL = /^\s{0,3}[-*]\s+(.*)$/;
const OL = /^\s{0,3}\d{1,9}[.)]\s+(.*)$/;
const FENCE = /^\s{0,3}```/;

/** Parses a message into blocks. */
export function parse(text: string): Block[] {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const blocks: Block[] = [];
  let para: string[] = [];
  const endPara = () => {
    if (para.length > 0) blocks.push({ t: "p", children: inline(para.join("\n")) });
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (FENCE.test(line)) {
      endPara();
      const code: string[] = [];
      i++;
      while (i < lines.length && !FENCE.test(lines[i]!)) code.push(lines[i++]!);
      blocks.push({ t: "pre", text: code.join("\n") });
      continue;
    }
    const ul = UL.exec(line);
    const ol = ul ? null : OL.exec(line);
    if (ul || ol) {
      endPara();
      const kind = ul ? "ul" : "ol";
      const re = ul ? UL : OL;
      const items: Inline[][] = [];
      while (i < lines.length) {
        const m = re.exec(lines[i]!);
        if (!m) break;
        items.push(inline(m[1]!));
        i++;
      }
      i--;
      blocks.push({ t: kind, items });
      continue;
    }
    if (line.trim() === "") endPara();
    else para.push(line);
  }
  endPara();
  return blocks;
}

function renderInline(nodes: Inline[]): ComponentChild[] {
  return nodes.map((n): ComponentChild => {
    switch (n.t) {
      case "text":
        return n.text;
      case "br":
        return h("br", null);
      case "code":
        return h("code", null, n.text);
      case "strong":
      case "em":
        return h(n.t, null, ...renderInline(n.children));
      case "link": {
        const href = safeHref(n.href);
        if (href === undefined) return h(Fragment, null, ...renderInline(n.children));
        return h("a", { href, rel: "noopener noreferrer nofollow", target: "_blank" }, ...renderInline(n.children));
      }
    }
  });
}

/** Renders `text` as virtual nodes: elements of the subset and strings (text nodes), never HTML. */
export function renderMarkdown(text: string): VNode[] {
  return parse(text).map((b) => {
    if (b.t === "p") return h("p", null, ...renderInline(b.children));
    if (b.t === "pre") return h("pre", null, h("code", null, b.text));
    return h(b.t, null, ...b.items.map((item) => h("li", null, ...renderInline(item))));
  });
}

function inlineText(nodes: Inline[]): string {
  return nodes
    .map((n) => (n.t === "text" || n.t === "code" ? n.text : n.t === "br" ? " " : inlineText(n.children)))
    .join("");
}

/** The plain text of a message, markup removed (for previews). */
export function plainText(text: string): string {
  return parse(text)
    .map((b) => (b.t === "p" ? inlineText(b.children) : b.t === "pre" ? b.text : b.items.map(inlineText).join(", ")))
    .join(" ")
    .replace(/\s+/g, " ")
    .trim();
}
