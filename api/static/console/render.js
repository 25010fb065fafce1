// Telegram messages as DOM nodes. Text is never parsed as HTML: entities (bold, links, code…)
// become elements and everything else text nodes, so whatever the bot sends is shown, not run.
// Entity offsets count UTF-16 code units, which is what JavaScript string indices count too.

const CASE_NUMBER = /\b[A-Z]{2,8}-\d{8}-\d{6}\b/g;
const SAFE_SCHEMES = new Set(["http:", "https:", "tg:", "mailto:", "tel:"]);

const TAGS = {
  bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code", pre: "pre",
  blockquote: "blockquote", expandable_blockquote: "blockquote",
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Plain text, with case numbers (SH-20261121-000123) made clickable.
function appendPlain(parent, text, hooks) {
  let last = 0;
  for (const match of text.matchAll(CASE_NUMBER)) {
    parent.append(text.slice(last, match.index));
    const ref = el("a", "case-ref", match[0]);
    ref.href = "#";
    ref.addEventListener("click", (event) => { event.preventDefault(); hooks.onCase(match[0]); });
    parent.append(ref);
    last = match.index + match[0].length;
  }
  parent.append(text.slice(last));
}

function safeUrl(href) {
  try {
    const url = new URL(href, "https://invalid.example/");
    return SAFE_SCHEMES.has(url.protocol) ? url : null;
  } catch {
    return null;
  }
}

function link(href, text, hooks) {
  const url = safeUrl(href);
  if (!url) return el("span", "link-refused", text);
  const a = el("a", "link", text);
  a.href = url.href;
  a.rel = "noopener noreferrer";
  a.target = "_blank";
  // A deep link to this bot (t.me/<bot>?start=…) is a /start with that argument, as in Telegram.
  const start = url.searchParams.get("start");
  if (start !== null && url.hostname === "t.me" && url.pathname.slice(1).toLowerCase() === hooks.botUsername) {
    a.addEventListener("click", (event) => { event.preventDefault(); hooks.onCommand(`/start ${start}`); });
  }
  return a;
}

function entityNode(entity, inner, hooks) {
  const tag = TAGS[entity.type];
  if (tag === "pre") {
    const pre = el("pre");
    pre.append(el("code", entity.language ? `language-${entity.language}` : "", inner));
    return pre;
  }
  if (tag) return el(tag, "", inner);
  switch (entity.type) {
    case "text_link": return link(entity.url, inner, hooks);
    case "url": return link(/^[a-z]+:/i.test(inner) ? inner : `http://${inner}`, inner, hooks);
    case "email": return link(`mailto:${inner}`, inner, hooks);
    case "phone_number": return link(`tel:${inner}`, inner, hooks);
    case "bot_command": {
      const a = el("a", "command", inner);
      a.href = "#";
      a.addEventListener("click", (event) => { event.preventDefault(); hooks.onCommand(inner.split("@")[0]); });
      return a;
    }
    default: return el("span", `entity-${entity.type}`, inner); // spoiler, mention, hashtag…
  }
}

// Entities sorted by start, longer first, so an entity's children follow it.
function build(parent, text, entities, start, end, hooks) {
  let pos = start;
  let i = 0;
  while (i < entities.length) {
    const entity = entities[i];
    const stop = Math.min(entity.offset + entity.length, end);
    const inner = [];
    let j = i + 1;
    for (; j < entities.length && entities[j].offset < stop; j++) {
      const child = entities[j];
      inner.push({ ...child, length: Math.min(child.offset + child.length, stop) - child.offset });
    }
    if (entity.offset > pos) appendPlain(parent, text.slice(pos, entity.offset), hooks);
    const from = Math.max(entity.offset, pos);
    const node = entityNode(entity, text.slice(from, stop), hooks);
    // Entities nest (bold inside a link); code and pre hold plain text only, as in Telegram.
    if (inner.length && entity.type !== "pre" && entity.type !== "code") {
      node.textContent = "";
      build(node, text, inner, from, stop, hooks);
    }
    parent.append(node);
    pos = Math.max(pos, stop);
    i = j;
  }
  if (pos < end) appendPlain(parent, text.slice(pos, end), hooks);
}

export function renderText(text, entities, hooks) {
  const holder = el("div", "text");
  const sorted = [...(entities || [])].sort((a, b) => a.offset - b.offset || b.length - a.length);
  build(holder, text, sorted, 0, text.length, hooks);
  return holder;
}

function time(date, locale) {
  if (!date) return "";
  return new Date(date * 1000).toLocaleTimeString(locale === "zh_CN" ? "zh-CN" : "en-GB",
    { hour: "2-digit", minute: "2-digit" });
}

// One message bubble. `hooks` carries what clicks do and the pane's words (`t`).
export function renderMessage(message, hooks) {
  const bubble = el("article", `msg ${message.mine ? "mine" : "bot"}`);
  bubble.dataset.id = message.id;
  if (message.photo) {
    const img = el("img", "photo");
    img.src = `/console/api/files/${encodeURIComponent(message.photo.file_id)}`;
    img.alt = hooks.t("photo");
    if (message.photo.width && message.photo.height) {
      img.width = Math.min(message.photo.width, 320);
      img.height = Math.round(img.width * message.photo.height / message.photo.width);
    }
    bubble.append(img);
  }
  if (message.location) {
    const card = el("div", "location");
    card.append(hooks.miniMap(message.location.latitude, message.location.longitude));
    const label = message.venue ? message.venue.title : hooks.t(message.location.live ? "live_location" : "location_label");
    const caption = el("div", "where");
    caption.append(el("strong", "", `📍 ${label}`));
    if (message.venue && message.venue.address) caption.append(el("span", "address", message.venue.address));
    caption.append(el("span", "coords", `${message.location.latitude.toFixed(5)}, ${message.location.longitude.toFixed(5)}`));
    card.append(caption);
    bubble.append(card);
  }
  if (message.contact) {
    bubble.append(el("div", "contact", `👤 ${message.contact.first_name} ${message.contact.phone_number}`));
  }
  if (message.document) {
    const a = el("a", "document", `📄 ${message.document.file_name || hooks.t("document")}`);
    a.href = `/console/api/files/${encodeURIComponent(message.document.file_id)}`;
    a.download = message.document.file_name || "file";
    bubble.append(a);
  }
  if (message.text !== undefined) bubble.append(renderText(message.text, message.entities, hooks));
  if (message.caption !== undefined) bubble.append(renderText(message.caption, message.caption_entities, hooks));
  if (message.unsupported !== undefined) {
    bubble.append(el("div", "unsupported", `${hooks.t("unsupported")} (${message.unsupported})`));
  }
  const meta = el("div", "meta", time(message.date, hooks.locale));
  if (message.edited) meta.prepend(`${hooks.t("edited")} · `);
  bubble.append(meta);
  if (message.inline_keyboard) {
    const keyboard = el("div", "inline-keyboard");
    for (const row of message.inline_keyboard) {
      const line = el("div", "row");
      for (const button of row) {
        if (button.url) {
          const a = link(button.url, button.text, hooks);
          a.classList.add("button");
          line.append(a);
          continue;
        }
        const b = el("button", "button", button.text);
        b.type = "button";
        if (button.callback_data === undefined) b.disabled = true;
        else {
          b.dataset.callback = button.callback_data; // what pressing sends, as Telegram would
          b.addEventListener("click", () => hooks.onPress(message.id, button.callback_data));
        }
        line.append(b);
      }
      keyboard.append(line);
    }
    bubble.append(keyboard);
  }
  return bubble;
}
