// 督办本地控制台: pick who you are and where you speak, talk to the bot, watch every post live.
// Every piece of text reaches the page through textContent or createTextNode, never innerHTML:
// what people type and what the bot renders from their input is shown, never interpreted.
import { markdown } from "/console/markdown.js";

const ROLE = { admin: "管理员", secretary: "书记", liaison: "联络员" };
const PLATFORM = { wecom: "企业微信", dingtalk: "钉钉", console: "控制台" };
const DIRECT = "__direct__"; // the chat picker's value for 与机器人私聊
const MAX_TEXT = 4000;
const STORE = "duban.console.";

const $ = (id) => document.getElementById(id);
const ui = {
  person: $("person"), chat: $("chat"), onlyHere: $("only-here"), feed: $("feed"),
  empty: $("empty"), error: $("error"), form: $("composer"), text: $("text"),
  send: $("send"), status: $("status"),
};
const people = new Map();
const seen = new Set();
let mention = /@[^\s@，。、,.:：;；!！?？]+/gu; // replaced by the configured names once known

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function remember(key, value) {
  try { localStorage.setItem(STORE + key, value); } catch (e) { /* private mode */ }
}

function recall(key) {
  try { return localStorage.getItem(STORE + key); } catch (e) { return null; }
}

// ---- the directory: who can speak, and where ----

async function loadDirectory() {
  const response = await fetch("/console/api/directory", { cache: "no-store" });
  if (!response.ok) throw new Error(`目录加载失败（${response.status}）`);
  const dir = await response.json();
  for (const p of dir.people) people.set(p.id, p);
  const names = [...people.values()].map((p) => p.name).sort((a, b) => b.length - a.length);
  const escaped = names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  mention = new RegExp(`@(?:${[...escaped, "所有人", "all"].join("|")})`, "gu");
  fillPeople(dir);
  fillChats(dir);
  document.title = `督办 · 本地控制台 · ${dir.committee.short || dir.committee.name}`;
}

function fillPeople(dir) {
  ui.person.replaceChildren();
  const option = (id, label) => { const o = el("option", "", label); o.value = id; return o; };
  const admins = el("optgroup");
  admins.label = "工委管理员";
  for (const p of dir.people) {
    if (p.roles.includes("admin")) admins.append(option(p.id, `${p.name}（管理员）`));
  }
  if (admins.children.length) ui.person.append(admins);
  for (const u of dir.units) {
    if (!u.people.length) continue;
    const group = el("optgroup");
    group.label = u.lead ? `${u.short}（牵头单位）` : u.short;
    for (const id of u.people) {
      const p = people.get(id);
      const roles = p.units.filter((r) => r.id === u.id).map((r) => ROLE[r.role]);
      group.append(option(id, `${p.name}（${roles.join("、")}）`));
    }
    ui.person.append(group);
  }
  const others = el("optgroup");
  others.label = "其他人员";
  for (const p of dir.people) if (!p.roles.length) others.append(option(p.id, p.name));
  if (others.children.length) ui.person.append(others);
  const saved = recall("person");
  if (saved && people.has(saved)) ui.person.value = saved;
  ui.person.disabled = false;
}

function fillChats(dir) {
  ui.chat.replaceChildren();
  const groups = el("optgroup");
  groups.label = "群聊";
  for (const g of dir.groups) {
    const o = el("option", "", `${g.name}（${PLATFORM[g.platform] || g.platform}）`);
    o.value = g.id;
    groups.append(o);
  }
  const direct = el("optgroup");
  direct.label = "私聊";
  const o = el("option", "", "与机器人私聊");
  o.value = DIRECT;
  direct.append(o);
  ui.chat.append(groups, direct);
  const saved = recall("chat");
  if (saved && [...ui.chat.options].some((opt) => opt.value === saved)) ui.chat.value = saved;
  else choosePersonsGroup();
  ui.chat.disabled = false;
}

function choosePersonsGroup() {
  const home = people.get(ui.person.value)?.home_group;
  if (home) ui.chat.value = home;
}

function describe(personId) {
  const p = people.get(personId);
  if (!p) return "";
  const parts = p.roles.includes("admin") ? ["工委管理员"] : [];
  for (const r of p.units) parts.push(`${r.short}${ROLE[r.role]}`);
  return parts.join(" · ");
}

// The chat the page is "in": a group id, or the person's id for the one-to-one chat.
function currentChat() {
  return ui.chat.value === DIRECT ? ui.person.value : ui.chat.value;
}

// ---- rendering: mentions highlighted, everything as text (Markdown in markdown.js) ----

function plain(text, parent) {
  let last = 0;
  for (const m of text.matchAll(mention)) {
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    parent.append(el("span", "mention", m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

function stamp(iso) {
  // The server's wall clock (Asia/Shanghai), whatever the browser's time zone.
  const m = /^\d{4}-(\d\d)-(\d\d)T(\d\d:\d\d:\d\d)/.exec(iso);
  return m ? `${m[1]}-${m[2]} ${m[3]}` : iso;
}

function where(ev) {
  if (ev.chat.is_group) return ev.chat.title || ev.chat.id;
  const other = people.get(ev.chat.id)?.name || ev.chat.title || ev.chat.id;
  return ev.kind === "outbound" ? `私聊 · ${other}` : "与机器人私聊";
}

function show(ev) {
  const bot = ev.kind === "outbound";
  const item = el("article", bot ? "msg bot" : "msg");
  item.dataset.chat = ev.chat.id;
  item.dataset.sender = ev.sender.id;
  const meta = el("div", "meta");
  meta.append(el("span", "who", ev.sender.name));
  const role = bot ? "机器人" : describe(ev.sender.id);
  if (role) meta.append(el("span", "tag", role));
  meta.append(el("span", "arrow", "→"), el("span", "where", where(ev)));
  meta.append(el("time", "", stamp(ev.at)));
  const bubble = el("div", "bubble");
  if (ev.title) bubble.title = ev.title;
  if (bot && ev.format === "markdown") markdown(ev.body, bubble, plain);
  else { bubble.classList.add("plain"); plain(ev.body, bubble); }
  if (ev.mentions.length || ev.has_image) {
    const extras = el("div", "extras");
    if (ev.mentions.length) extras.append(el("span", "label", "提醒："));
    for (const name of ev.mentions) extras.append(el("span", "mention", `@${name}`));
    if (ev.image && ev.image.startsWith("data:image/")) {
      const img = el("img", "picture");
      img.src = ev.image;
      img.alt = "附图";
      bubble.append(img);
    } else if (ev.has_image) extras.append(el("span", "chip", "〔附图〕"));
    bubble.append(extras);
  }
  item.append(meta, bubble);
  mark(item);
  const atBottom = ui.feed.scrollHeight - ui.feed.scrollTop - ui.feed.clientHeight < 60;
  ui.feed.append(item);
  refreshEmpty();
  if (atBottom) ui.feed.scrollTop = ui.feed.scrollHeight;
}

function mark(item) {
  const mine = !item.classList.contains("bot") && item.dataset.sender === ui.person.value;
  item.classList.toggle("self", mine);
  item.classList.toggle("hidden", ui.onlyHere.checked && item.dataset.chat !== currentChat());
}

function refreshEmpty() {
  ui.empty.hidden = ui.feed.querySelector(".msg:not(.hidden)") !== null;
}

function remark() {
  for (const item of ui.feed.querySelectorAll(".msg")) mark(item);
  refreshEmpty();
  ui.feed.scrollTop = ui.feed.scrollHeight;
}

// ---- speaking and listening ----

function fail(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

const REFUSED = {
  400: "身份或群聊不在当前配置中，或消息为空、超过 4000 字",
  403: "控制台只接受本机访问",
  404: "服务器未开启控制台（DUBAN_CONSOLE=true）",
  413: "消息太大",
};

async function send(event) {
  event.preventDefault();
  const text = ui.text.value.trim();
  if (!text || ui.send.disabled) return;
  if (text.length > MAX_TEXT) { fail(`消息太长：最多 ${MAX_TEXT} 字，现在 ${text.length} 字`); return; }
  const body = { person: ui.person.value, group: ui.chat.value === DIRECT ? null : ui.chat.value, text };
  ui.send.disabled = true;
  try {
    const response = await fetch("/hooks/console", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (response.ok) { ui.text.value = ""; fail(""); }
    else fail(`发送失败（${response.status}）：${REFUSED[response.status] || "服务器拒绝了这条消息"}`);
  } catch (e) {
    fail("发送失败：连不上服务器");
  } finally {
    ui.send.disabled = false;
    ui.text.focus();
  }
}

function listen() {
  const source = new EventSource("/console/api/events");
  source.onopen = () => { ui.status.textContent = "已连接"; ui.status.className = "status ok"; };
  source.onerror = () => { ui.status.textContent = "连接中断，正在重连…"; ui.status.className = "status bad"; };
  source.onmessage = (m) => {
    if (seen.has(m.lastEventId)) return; // a reconnect may replay what is already shown
    seen.add(m.lastEventId);
    show(JSON.parse(m.data));
  };
}

ui.person.addEventListener("change", () => {
  remember("person", ui.person.value);
  if (ui.chat.value !== DIRECT) { choosePersonsGroup(); remember("chat", ui.chat.value); }
  remark();
});
ui.chat.addEventListener("change", () => { remember("chat", ui.chat.value); remark(); });
ui.onlyHere.addEventListener("change", remark);
ui.form.addEventListener("submit", send);
ui.text.addEventListener("keydown", (e) => {
  // Enter while an input method is composing picks a candidate; it must not send.
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    ui.form.requestSubmit();
  }
});

loadDirectory()
  .then(() => {
    ui.text.disabled = false;
    ui.send.disabled = false;
    listen();
  })
  .catch((e) => fail(e.message));
