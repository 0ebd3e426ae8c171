// The Markdown subset both platforms render (headings, bold, links, lists, quotes), built
// from DOM nodes only: every run of text goes through `plain`, which must create text nodes.
function el(tag, cls) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  return node;
}

function inline(text, parent, plain) {
  const pattern = /\*\*(.+?)\*\*|\[([^\]\n]+)\]\(([^()\s]+)\)/g;
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    plain(text.slice(last, m.index), parent);
    if (m[1] !== undefined) {
      const strong = el("strong");
      inline(m[1], strong, plain);
      parent.append(strong);
    } else {
      link(m[2], m[3], parent, plain);
    }
    last = m.index + m[0].length;
  }
  plain(text.slice(last), parent);
}

function link(label, href, parent, plain) {
  let url = null;
  try { url = new URL(href); } catch (e) { url = null; }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    plain(label, parent); // only web links become links
    return;
  }
  const a = el("a");
  a.href = url.href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  inline(label, a, plain);
  parent.append(a);
}

export function markdown(source, root, plain) {
  let block = null;
  let kind = "";
  const open = (tag, k) => {
    if (kind === k) return false;
    block = el(tag);
    root.append(block);
    kind = k;
    return true;
  };
  for (const raw of source.replace(/\r\n?/g, "\n").split("\n")) {
    const line = raw.trimEnd();
    let m;
    if (!line.trim()) {
      kind = "";
    } else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
      kind = "";
      const h = el("div", `md-h md-h${m[1].length}`);
      inline(m[2], h, plain);
      root.append(h);
    } else if ((m = /^\s*>\s?(.*)$/.exec(line))) {
      if (!open("blockquote", "quote")) block.append(el("br"));
      inline(m[1], block, plain);
    } else if ((m = /^\s*[-*+]\s+(.*)$/.exec(line))) {
      open("ul", "ul");
      const li = el("li");
      inline(m[1], li, plain);
      block.append(li);
    } else if ((m = /^\s*(\d{1,9})[.)]\s+(.*)$/.exec(line))) {
      if (open("ol", "ol")) block.start = Number(m[1]);
      const li = el("li");
      inline(m[2], li, plain);
      block.append(li);
    } else {
      if (!open("p", "p")) block.append(el("br"));
      inline(line, block, plain);
    }
  }
}
