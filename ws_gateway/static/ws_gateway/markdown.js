// A small, safe Markdown renderer: it builds DOM nodes from a fixed set of tags and puts
// every piece of source text in as a text node, so no HTML from the model or the user can
// reach the page as markup. Supported: fenced and indented code, headings, lists, block
// quotes, rules, paragraphs, inline code, bold, italics, strike-through and links
// (http, https and mailto only).

const SAFE_URL = /^(https?:\/\/|mailto:)/i;

export function renderMarkdown(source) {
  const root = document.createDocumentFragment();
  const lines = String(source ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i += 1; // the closing fence (or the end, while it is still streaming)
      root.append(codeBlock(body.join("\n"), fence[2]));
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const heading = line.match(/^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/);
    if (heading) {
      const el = document.createElement(`h${Math.min(6, heading[1].length + 2)}`);
      inline(el, heading[2]);
      root.append(el);
      i += 1;
      continue;
    }
    if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
      root.append(document.createElement("hr"));
      i += 1;
      continue;
    }
    if (/^ {4}|^\t/.test(line)) {
      const body = [];
      while (i < lines.length && (/^ {4}|^\t/.test(lines[i]) || !lines[i].trim())) {
        body.push(lines[i].replace(/^ {4}|^\t/, ""));
        i += 1;
      }
      root.append(codeBlock(body.join("\n").replace(/\n+$/, ""), ""));
      continue;
    }
    if (/^\s{0,3}>/.test(line)) {
      const body = [];
      while (i < lines.length && /^\s{0,3}>/.test(lines[i])) body.push(lines[i++].replace(/^\s{0,3}>\s?/, ""));
      const quote = document.createElement("blockquote");
      quote.append(renderMarkdown(body.join("\n")));
      root.append(quote);
      continue;
    }
    const item = listItem(line);
    if (item) {
      const list = document.createElement(item.ordered ? "ol" : "ul");
      while (i < lines.length) {
        const next = listItem(lines[i]);
        if (!next || next.ordered !== item.ordered) break;
        const li = document.createElement("li");
        inline(li, next.text);
        list.append(li);
        i += 1;
      }
      root.append(list);
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) para.push(lines[i++].trim());
    const p = document.createElement("p");
    para.forEach((text, n) => {
      if (n) p.append(document.createElement("br"));
      inline(p, text);
    });
    root.append(p);
  }
  return root;
}

function startsBlock(line) {
  return /^\s{0,3}(`{3,}|~{3,}|#{1,6}\s|>)/.test(line) || listItem(line) !== null;
}

function listItem(line) {
  const m = line.match(/^\s{0,3}([-*+]|\d{1,9}[.)])\s+(.*)$/);
  if (!m) return null;
  return { ordered: /\d/.test(m[1]), text: m[2] };
}

function codeBlock(text, lang) {
  const pre = document.createElement("pre");
  const code = document.createElement("code");
  if (lang) code.dataset.lang = lang;
  code.textContent = text;
  pre.append(code);
  return pre;
}

// Inline spans, by the earliest match; whatever is not markup is a text node.
const INLINE = [
  { re: /`([^`]+)`/, make: (m) => el("code", m[1], false) },
  { re: /\*\*(.+?)\*\*|(?<![\w])__(.+?)__(?![\w])/, make: (m) => el("strong", m[1] ?? m[2]) },
  { re: /~~(.+?)~~/, make: (m) => el("del", m[1]) },
  { re: /\*([^*\s][^*]*?)\*|(?<![\w])_([^_\s][^_]*?)_(?![\w])/, make: (m) => el("em", m[1] ?? m[2]) },
  { re: /\[([^\]]+)\]\(([^)\s]+)\)/, make: link },
  { re: /(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/, make: (m) => link([m[0], m[1], m[1]]) },
];

export function inline(parent, text) {
  let rest = text;
  while (rest) {
    let best = null;
    for (const rule of INLINE) {
      const m = rule.re.exec(rest);
      if (m && (best === null || m.index < best.m.index)) best = { m, rule };
    }
    if (!best) {
      parent.append(document.createTextNode(rest));
      return;
    }
    if (best.m.index) parent.append(document.createTextNode(rest.slice(0, best.m.index)));
    parent.append(best.rule.make(best.m));
    rest = rest.slice(best.m.index + best.m[0].length);
  }
}

function el(tag, text, nested = true) {
  const node = document.createElement(tag);
  if (nested) inline(node, text);
  else node.textContent = text;
  return node;
}

function link(m) {
  const url = m[2];
  if (!SAFE_URL.test(url)) return document.createTextNode(m[0]);
  const a = document.createElement("a");
  a.href = url;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  inline(a, m[1]);
  return a;
}
