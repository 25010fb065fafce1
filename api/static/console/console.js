// The sandbox console: one pane per persona, kept live by server-sent events.
// Every button here makes the persona act in the emulated Telegram (see api/console.py);
// what appears in a pane is only ever what the bot sent to that persona.

import { GridMap, Picker } from "./map.js";
import { renderMessage } from "./render.js";

const API = "/console/api";
const HEADERS = { "X-OneGrid-Console": "1" };

const state = {
  strings: {},          // locale → {ui, status, action}
  botUsername: "",
  people: new Map(),    // persona id → person (name, roles, locale…)
  panes: new Map(),     // persona id → Pane
  // Panes switched off in the header; at first the second grid's worker, so three fit a laptop screen.
  hidden: new Set(JSON.parse(localStorage.getItem("onegrid.hidden") || "null") || ["worker2"]),
  viewerLocale: localStorage.getItem("onegrid.locale") || (navigator.language.startsWith("zh") ? "zh_CN" : "en"),
  selectedCase: null,
  followNewest: true,
  gridMap: null,
  picker: null,
};

function words(locale) {
  return state.strings[locale] || state.strings.en || { ui: {}, status: {}, action: {} };
}

function translator(locale) {
  const ui = words(locale).ui;
  return (key, values = {}) => (ui[key] || key).replace(/\{(\w+)\}/g, (_, name) => values[name] ?? "");
}

async function request(path, options = {}) {
  const response = await fetch(`${API}${path}`, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.detail || response.statusText), { code: body.code });
  return body;
}

function post(path, body) {
  return request(path, {
    method: "POST",
    headers: { ...HEADERS, "Content-Type": "application/json" },
    body: JSON.stringify(body ?? {}),
  });
}

// Fill [data-ui], [data-ui-title], [data-ui-placeholder] inside `root` from locale's words.
function translate(root, locale) {
  const t = translator(locale);
  root.querySelectorAll("[data-ui]").forEach((n) => { n.textContent = t(n.dataset.ui); });
  root.querySelectorAll("[data-ui-title]").forEach((n) => { n.title = t(n.dataset.uiTitle); n.setAttribute("aria-label", n.title); });
  root.querySelectorAll("[data-ui-placeholder]").forEach((n) => { n.placeholder = t(n.dataset.uiPlaceholder); });
}

class Pane {
  constructor(person) {
    this.id = person.id;
    this.root = document.getElementById("pane-template").content.firstElementChild.cloneNode(true);
    this.root.dataset.persona = person.id;
    this.root.dataset.key = person.key;
    this.messages = this.root.querySelector(".messages");
    this.text = this.root.querySelector("textarea");
    this.rendered = new Map(); // message id → {json, node}
    this.seenToasts = null;
    this.keyboardHiddenAt = null;
    this.chat = null;
    this.attachment = null;
    // One persona's actions reach the bot in the order they were taken, as a Telegram app sends them:
    // a tap and the text typed right after it are two requests, and the second waits for the first.
    this.outbox = Promise.resolve();
    this.wire();
    this.update(person);
  }

  get person() { return state.people.get(this.id); }

  get locale() { return this.person?.locale || "zh_CN"; }

  t(key, values) { return translator(this.locale)(key, values); }

  hooks() {
    return {
      t: (key) => this.t(key),
      locale: this.locale,
      botUsername: state.botUsername.toLowerCase(),
      onPress: (messageId, data) => this.act(`/personas/${this.id}/press`, { message_id: messageId, callback_data: data }),
      onCommand: (command) => this.act(`/personas/${this.id}/text`, { text: command }),
      onCase: (number) => selectCase(number, false),
      miniMap: (lat, lon) => state.gridMap.miniMap(lat, lon, this.locale),
    };
  }

  wire() {
    const form = this.root.querySelector(".composer");
    form.addEventListener("submit", (event) => { event.preventDefault(); this.send(); });
    this.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); this.send(); }
    });
    const input = this.root.querySelector(".photo-input");
    this.root.querySelector(".attach-photo").addEventListener("click", () => input.click());
    input.addEventListener("change", () => this.attach(input.files[0] || null));
    this.root.querySelector(".attachment .drop").addEventListener("click", () => this.attach(null));
    this.root.querySelector(".attach-location").addEventListener("click", () => this.shareLocation());
    const menu = this.root.querySelector(".command-menu");
    this.root.querySelector(".open-menu").addEventListener("click", () => { menu.hidden = !menu.hidden; });
    // Follow the newest message unless the reader scrolled up, also while pictures load.
    this.stick = true;
    this.messages.addEventListener("scroll", () => { this.stick = this.nearBottom(); });
    this.messages.addEventListener("load", () => { if (this.stick) this.toBottom(); }, true);
  }

  nearBottom() {
    return this.messages.scrollHeight - this.messages.scrollTop - this.messages.clientHeight < 40;
  }

  toBottom() {
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  update(person) {
    const t = translator(person.locale);
    this.root.lang = person.locale === "zh_CN" ? "zh-CN" : "en";
    this.root.querySelector(".name").textContent = person.name;
    this.root.querySelector(".role").textContent = person.roles.map((r) => t(`role_${r}`)).join(" · ");
    const area = person.area ? (person.locale === "zh_CN" ? person.area.name : person.area.name_en || person.area.name) : "";
    this.root.querySelector(".area").textContent = area;
    const staff = person.roles.includes("worker");
    const duty = this.root.querySelector(".duty");
    duty.textContent = staff ? t(person.on_duty ? "on_duty" : "off_duty") : "";
    duty.dataset.onDuty = staff && person.on_duty;
    this.root.querySelector(".locale").textContent = person.locale === "zh_CN" ? "中文" : "EN";
    // A pane on WeCom / 政务微信 (ONEGRID_SANDBOX_WECOM=on) is marked; its actions go through the WeCom emulator.
    const channel = this.root.querySelector(".channel");
    this.root.dataset.channel = person.channel || "telegram";
    channel.hidden = person.channel !== "wecom";
    channel.textContent = channel.hidden ? "" : t("channel_wecom");
    translate(this.root, person.locale);
    if (this.chat) this.render(this.chat, true);
  }

  inOrder(task) {
    const run = this.outbox.then(task, task);
    this.outbox = run.catch(() => {});
    return run;
  }

  async act(path, body) {
    this.showError(null);
    try {
      await this.inOrder(() => post(path, body));
    } catch (error) {
      this.showError(error);
    }
  }

  showError(error) {
    const box = this.root.querySelector(".error");
    box.hidden = !error;
    if (error) {
      const reason = this.t(`err_${error.code || "network"}`);
      box.textContent = this.t("error", { reason: reason.startsWith("err_") ? error.message : reason });
    }
  }

  attach(file) {
    this.attachment = file;
    const box = this.root.querySelector(".attachment");
    box.hidden = !file;
    this.root.querySelector(".photo-input").value = "";
    if (!file) return;
    box.querySelector(".file-name").textContent = file.name;
    box.querySelector("img").src = URL.createObjectURL(file);
    this.text.placeholder = this.t("caption");
    this.text.focus();
  }

  async send() {
    const text = this.text.value;
    if (this.attachment) {
      const form = new FormData();
      form.append("persona", this.id);
      form.append("file", this.attachment);
      form.append("caption", text.trim());
      this.showError(null);
      try {
        await this.inOrder(() => request("/photo", { method: "POST", headers: HEADERS, body: form }));
        this.text.value = "";
        this.attach(null);
        this.text.placeholder = this.placeholder || this.t("message");
      } catch (error) {
        this.showError(error);
      }
      return;
    }
    if (!text.trim()) return;
    this.text.value = "";
    await this.act(`/personas/${this.id}/text`, { text });
  }

  async shareLocation() {
    translate(state.picker.dialog, this.locale); // the picker speaks the persona's language
    state.picker.dialog.querySelector("label.live").hidden = this.person?.channel === "wecom"; // WeCom: no live location
    const picked = await state.picker.open((key) => this.t(key), this.locale);
    if (picked) await this.act(`/personas/${this.id}/location`, picked);
  }

  async pressReplyButton(button) {
    if (this.chat.reply_keyboard?.one_time) this.keyboardHiddenAt = this.lastBotMessage();
    if (button.request_location) return this.shareLocation();
    if (button.request_contact) return this.act(`/personas/${this.id}/contact`);
    return this.act(`/personas/${this.id}/text`, { text: button.text });
  }

  lastBotMessage() {
    const mine = this.chat.messages.filter((m) => !m.mine);
    return mine.length ? mine[mine.length - 1].id : 0;
  }

  render(chat, force = false) {
    this.chat = chat;
    const hooks = this.hooks();
    const keep = new Set();
    let previous = null;
    for (const message of chat.messages) {
      const json = JSON.stringify(message);
      let entry = this.rendered.get(message.id);
      if (force || !entry || entry.json !== json) {
        const node = renderMessage(message, hooks);
        if (entry) entry.node.replaceWith(node);
        entry = { json, node };
        this.rendered.set(message.id, entry);
      }
      keep.add(message.id);
      if (entry.node.previousElementSibling !== previous || !entry.node.isConnected) {
        if (previous) previous.after(entry.node); else this.messages.prepend(entry.node);
      }
      previous = entry.node;
    }
    for (const [id, entry] of this.rendered) {
      if (!keep.has(id)) { entry.node.remove(); this.rendered.delete(id); }
    }
    this.renderEmpty(chat);
    this.renderKeyboard(chat);
    this.renderCommands(chat);
    this.renderToasts(chat);
    if (this.stick || force) this.toBottom();
    this.markUnread(chat);
  }

  // A hidden pane that gets a message from the bot shows a count on its chip in the header.
  markUnread(chat) {
    const fromBot = chat.messages.filter((m) => !m.mine).length;
    if (this.root.isConnected || this.seenFromBot === undefined) this.seenFromBot = fromBot;
    this.unread = fromBot - this.seenFromBot;
    const badge = document.querySelector(`.chip[data-key="${this.root.dataset.key}"] .unread`);
    if (badge) { badge.textContent = this.unread > 0 ? String(this.unread) : ""; badge.hidden = this.unread <= 0; }
  }

  renderEmpty(chat) {
    let empty = this.messages.querySelector(".empty");
    if (chat.messages.length) { empty?.remove(); return; }
    if (!empty) {
      empty = document.createElement("div");
      empty.className = "empty";
      const hint = document.createElement("p");
      const start = document.createElement("button");
      start.type = "button";
      start.className = "start";
      start.addEventListener("click", () => this.act(`/personas/${this.id}/text`, { text: "/start" }));
      empty.append(hint, start);
      this.messages.append(empty);
    }
    empty.querySelector("p").textContent = this.t("empty_chat");
    empty.querySelector("button").textContent = this.t("start");
  }

  renderKeyboard(chat) {
    const box = this.root.querySelector(".reply-keyboard");
    const keyboard = chat.reply_keyboard;
    this.placeholder = keyboard?.placeholder || this.t("message");
    if (!this.attachment) this.text.placeholder = this.placeholder;
    const hidden = keyboard?.one_time && this.keyboardHiddenAt !== null && this.keyboardHiddenAt >= this.lastBotMessage();
    box.replaceChildren();
    if (!keyboard || hidden) return;
    for (const row of keyboard.rows) {
      const line = document.createElement("div");
      line.className = "row";
      for (const button of row) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = button.text;
        b.classList.toggle("requests-location", button.request_location);
        b.classList.toggle("requests-contact", button.request_contact);
        b.addEventListener("click", () => this.pressReplyButton(button));
        line.append(b);
      }
      box.append(line);
    }
  }

  renderCommands(chat) {
    const menu = this.root.querySelector(".command-menu");
    this.root.querySelector(".open-menu").hidden = !chat.commands.length;
    menu.replaceChildren(...chat.commands.map((c) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = `/${c.command} — ${c.description}`;
      b.addEventListener("click", () => { menu.hidden = true; this.act(`/personas/${this.id}/text`, { text: `/${c.command}` }); });
      return b;
    }));
  }

  renderToasts(chat) {
    const fresh = chat.toasts.filter((toast) => this.seenToasts && !this.seenToasts.has(toast.id));
    this.seenToasts = new Set(chat.toasts.map((toast) => toast.id));
    if (!fresh.length) return;
    const box = this.root.querySelector(".toast");
    const last = fresh[fresh.length - 1];
    box.textContent = last.text;
    box.classList.toggle("alert", last.alert);
    box.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => { box.hidden = true; }, last.alert ? 8000 : 3500);
  }
}

// -- people and panes ----------------------------------------------------------------------

function setPeople(people) {
  for (const person of people) {
    state.people.set(person.id, person);
    const pane = state.panes.get(person.id);
    if (pane) pane.update(person);
    else state.panes.set(person.id, new Pane(person));
  }
  layoutPanes();
}

function layoutPanes() {
  const panes = document.querySelector(".panes");
  const chips = document.querySelector(".people .chips");
  const t = translator(state.viewerLocale);
  chips.replaceChildren();
  for (const [id, pane] of state.panes) {
    const person = state.people.get(id);
    const chip = document.createElement("label");
    chip.className = "chip";
    chip.dataset.key = person.key;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = !state.hidden.has(person.key);
    box.addEventListener("change", () => {
      if (box.checked) state.hidden.delete(person.key); else state.hidden.add(person.key);
      localStorage.setItem("onegrid.hidden", JSON.stringify([...state.hidden]));
      layoutPanes();
    });
    const unread = document.createElement("span");
    unread.className = "unread";
    unread.hidden = !(pane.unread > 0);
    unread.textContent = pane.unread > 0 ? String(pane.unread) : "";
    chip.append(box, ` ${person.name} (${person.roles.map((r) => t(`role_${r}`)).join(", ")}) `, unread);
    chips.append(chip);
    if (state.hidden.has(person.key)) pane.root.remove();
    else if (!pane.root.isConnected) {
      panes.append(pane.root);
      if (pane.chat) { pane.seenFromBot = undefined; pane.render(pane.chat, true); } // read now
    }
  }
  // Panes in persona order, whatever order they were shown in.
  for (const pane of state.panes.values()) if (pane.root.isConnected) panes.append(pane.root);
}

// -- cases and their timeline ----------------------------------------------------------------

async function refreshCases() {
  const { cases } = await request("/cases");
  const t = words(state.viewerLocale);
  const list = document.querySelector(".case-list");
  list.replaceChildren();
  if (!cases.length) {
    const none = document.createElement("li");
    none.className = "none";
    none.textContent = t.ui.no_cases;
    list.append(none);
  }
  for (const c of cases) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.number = c.number;
    button.classList.toggle("selected", c.number === state.selectedCase);
    const category = state.viewerLocale === "zh_CN" ? c.category_name : c.category_name_en;
    button.innerText = `${c.number}\n${category || c.category} · ${t.status[c.status] || c.status}`;
    button.addEventListener("click", () => selectCase(c.number, c.number === cases[0].number));
    item.append(button);
    list.append(item);
  }
  if (cases.length && (state.followNewest || !state.selectedCase)) state.selectedCase = cases[0].number;
  list.querySelectorAll("button").forEach((b) => b.classList.toggle("selected", b.dataset.number === state.selectedCase));
  await showTimeline();
}

async function selectCase(number, follow) {
  state.selectedCase = number;
  state.followNewest = follow;
  document.querySelectorAll(".case-list button").forEach((b) => b.classList.toggle("selected", b.dataset.number === number));
  await showTimeline();
}

async function showTimeline() {
  const detail = document.querySelector(".case-detail");
  const t = words(state.viewerLocale);
  if (!state.selectedCase) {
    detail.replaceChildren(Object.assign(document.createElement("p"), { className: "none", textContent: t.ui.pick_case }));
    return;
  }
  let found;
  try {
    found = await request(`/cases/${encodeURIComponent(state.selectedCase)}`);
  } catch {
    return;
  }
  const head = document.createElement("p");
  head.className = "case-head";
  head.innerText = `${found.case.number} · ${t.status[found.case.status] || found.case.status}`;
  const events = document.createElement("ol");
  events.className = "events";
  for (const e of found.events) {
    const item = document.createElement("li");
    item.dataset.action = e.action;
    const when = new Date(e.at).toLocaleTimeString(state.viewerLocale === "zh_CN" ? "zh-CN" : "en-GB");
    const change = e.from_status ? `${t.status[e.from_status]} → ${t.status[e.to_status]}` : t.status[e.to_status];
    const who = [e.actor, t.ui[`role_${e.actor_role}`]].filter(Boolean).join(" · ");
    const title = document.createElement("strong");
    title.textContent = t.action[e.action] || e.action;
    const lines = [change, who, e.note].filter(Boolean).map((line) => {
      const span = document.createElement("span");
      span.textContent = line;
      return span;
    });
    const time = document.createElement("time");
    time.textContent = when;
    item.append(time, title, ...lines);
    events.append(item);
  }
  detail.replaceChildren(head, events);
}

// -- the live stream -----------------------------------------------------------------------

function connect() {
  const status = document.querySelector(".connection");
  const source = new EventSource(`${API}/events`);
  const label = (name) => { status.dataset.state = name; status.textContent = translator(state.viewerLocale)(name === "live" ? "live" : "reconnecting"); };
  source.addEventListener("open", () => label("live"));
  source.addEventListener("error", () => label("reconnecting"));
  source.addEventListener("people", (event) => setPeople(JSON.parse(event.data)));
  source.addEventListener("chat", (event) => {
    const { persona, chat } = JSON.parse(event.data);
    state.panes.get(persona)?.render(chat);
  });
  source.addEventListener("cases", () => refreshCases().catch(() => {}));
}

function setViewerLocale(locale) {
  state.viewerLocale = locale;
  localStorage.setItem("onegrid.locale", locale);
  document.documentElement.lang = locale === "zh_CN" ? "zh-CN" : "en";
  document.querySelector(".viewer-locale").value = locale;
  for (const node of document.querySelectorAll("header.top, aside.timeline, dialog.picker")) translate(node, locale);
  document.title = translator(locale)("title");
  layoutPanes();
  refreshCases().catch(() => {});
}

async function main() {
  const session = await request("/session");
  state.strings = session.strings;
  state.botUsername = session.bot.username;
  state.gridMap = new GridMap(await request("/map"));
  state.picker = new Picker(document.querySelector("dialog.picker"), state.gridMap);
  document.querySelector(".viewer-locale").addEventListener("change", (e) => setViewerLocale(e.target.value));
  document.querySelector(".add-resident").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = event.target.elements.name;
    await post("/personas", { name: input.value, locale: state.viewerLocale }).catch(() => {});
    input.value = "";
  });
  setPeople(session.people);
  setViewerLocale(state.viewerLocale);
  connect();
  // For browser tests: where a longitude/latitude is on the open map picker.
  window.oneGridConsole = { pickerPoint: (lon, lat) => state.picker.screenPoint(lon, lat) };
  document.body.dataset.ready = "true";
}

main();
