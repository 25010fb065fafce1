// The grid map: SVG drawn from the store's GeoJSON (no tiles, nothing fetched from the internet).
// Map units: x = longitude·cos(latitude of the focus), y = −latitude. At city scale that keeps
// shapes true, and a click turns back into longitude/latitude exactly.

const SVG = "http://www.w3.org/2000/svg";
const LABEL_PX = 12;

function svgEl(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function rings(geometry) {
  if (geometry.type === "Polygon") return [geometry.coordinates];
  if (geometry.type === "MultiPolygon") return geometry.coordinates;
  return [];
}

function bbox(features) {
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  for (const feature of features) {
    for (const polygon of rings(feature.geometry)) {
      for (const [lon, lat] of polygon[0]) {
        box[0] = Math.min(box[0], lon); box[1] = Math.min(box[1], lat);
        box[2] = Math.max(box[2], lon); box[3] = Math.max(box[3], lat);
      }
    }
  }
  return box;
}

// Even-odd ray casting over every ring (holes included).
function inside(lon, lat, geometry) {
  let hit = false;
  for (const polygon of rings(geometry)) {
    for (const ring of polygon) {
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const [xi, yi] = ring[i];
        const [xj, yj] = ring[j];
        if ((yi > lat) !== (yj > lat) && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) hit = !hit;
      }
    }
  }
  return hit;
}

export class GridMap {
  constructor(collection) {
    this.features = collection.features || [];
    this.grids = this.features.filter((f) => f.properties.level === "grid");
    const focus = this.features.filter((f) => f.properties.code === collection.focus);
    const [minLon, minLat, maxLon, maxLat] = bbox(focus.length ? focus : this.features);
    this.focusCode = collection.focus;
    this.k = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180) || 1;
    const pad = 0.15 * Math.max(maxLon - minLon, maxLat - minLat);
    this.home = {
      x: (minLon - pad) * this.k, y: -(maxLat + pad),
      w: (maxLon - minLon + 2 * pad) * this.k, h: maxLat - minLat + 2 * pad,
    };
  }

  get empty() { return this.features.length === 0; }

  project(lon, lat) { return [lon * this.k, -lat]; }

  unproject(x, y) { return [x / this.k, -y]; }

  gridAt(lon, lat) {
    return this.grids.find((f) => inside(lon, lat, f.geometry)) || null;
  }

  static label(feature, locale) {
    const p = feature.properties;
    return locale === "zh_CN" || !p.name_en ? p.name : p.name_en;
  }

  path(geometry) {
    let d = "";
    for (const polygon of rings(geometry)) {
      for (const ring of polygon) {
        d += ring.map(([lon, lat], i) => `${i ? "L" : "M"}${this.project(lon, lat).join(" ")}`).join("") + "Z";
      }
    }
    return d;
  }

  centre(geometry) {
    const ring = rings(geometry)[0][0].slice(0, -1);
    const lon = ring.reduce((s, p) => s + p[0], 0) / ring.length;
    const lat = ring.reduce((s, p) => s + p[1], 0) / ring.length;
    return this.project(lon, lat);
  }

  // An <svg> of every area; grids of the focus street carry labels.
  draw(locale, className) {
    const svg = svgEl("svg", { class: `grid-map ${className || ""}`, role: "img" });
    const layers = { district: svgEl("g"), street: svgEl("g"), grid: svgEl("g"), label: svgEl("g", { class: "labels" }) };
    for (const feature of this.features) {
      const p = feature.properties;
      const layer = layers[p.level] || layers.grid;
      const shape = svgEl("path", { d: this.path(feature.geometry), class: `area ${p.level}`, "data-code": p.code });
      if (p.parent_code === this.focusCode || p.code === this.focusCode) shape.classList.add("focus");
      const title = svgEl("title");
      title.textContent = GridMap.label(feature, locale);
      shape.append(title);
      layer.append(shape);
      if (p.level === "grid" && p.parent_code === this.focusCode) {
        const [x, y] = this.centre(feature.geometry);
        const text = svgEl("text", { x, y, class: "label" });
        text.textContent = GridMap.label(feature, locale).replace(/^.*?(\d+)\D*$/, "$1");
        layers.label.append(text);
      }
    }
    svg.append(layers.district, layers.street, layers.grid, layers.label);
    return svg;
  }

  // A small picture of the map around a shared point, for location messages.
  miniMap(lat, lon, locale) {
    const svg = this.draw(locale, "mini");
    const [x, y] = this.project(lon, lat);
    const span = 0.012;
    svg.append(pin(x, y, 0));
    setView(svg, { x: x - span * this.k, y: y - span / 2, w: 2 * span * this.k, h: span }, 240);
    return svg;
  }
}

function pin(x, y, radius) {
  const g = svgEl("g", { class: "pin" });
  g.append(svgEl("circle", { cx: x, cy: y, r: radius * 2.2, class: "halo" }), svgEl("circle", { cx: x, cy: y, r: radius }));
  return g;
}

// Labels keep their size on screen whatever the zoom; `pixels` is the drawn width.
function setView(svg, view, pixels) {
  svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  const perPixel = view.w / (pixels || svg.clientWidth || 600);
  svg.style.setProperty("--label-size", `${LABEL_PX * perPixel}px`);
  svg.querySelector(".labels")?.setAttribute("font-size", LABEL_PX * perPixel);
  for (const p of svg.querySelectorAll(".pin circle")) {
    p.setAttribute("r", (p.classList.contains("halo") ? 14 : 6) * perPixel);
  }
}

// The location picker dialog. Resolves to {latitude, longitude, live} or null when cancelled.
export class Picker {
  constructor(dialog, gridMap) {
    this.dialog = dialog;
    this.map = gridMap;
    this.svg = null;
    this.view = null;
    this.choice = null;
    this.dialog.querySelector(".zoom").addEventListener("click", (event) => {
      const action = event.target.value;
      if (action === "home") this.show({ ...this.map.home });
      else if (action) this.zoom(action === "in" ? 0.5 : 2, this.view.x + this.view.w / 2, this.view.y + this.view.h / 2);
    });
  }

  open(t, locale) {
    const host = this.dialog.querySelector(".map-host");
    this.svg = this.map.draw(locale, "picker-map");
    host.replaceChildren(this.svg);
    this.choice = null;
    this.t = t;
    this.locale = locale;
    this.dialog.querySelector(".picked").textContent = "";
    this.dialog.querySelector("button[value=send]").disabled = true;
    this.dialog.querySelector("input[name=live]").checked = false;
    this.listen();
    this.dialog.showModal();
    this.show({ ...this.map.home });
    return new Promise((resolve) => {
      this.dialog.addEventListener("close", () => {
        const send = this.dialog.returnValue === "send" && this.choice;
        resolve(send ? { ...this.choice, live: this.dialog.querySelector("input[name=live]").checked } : null);
      }, { once: true });
    });
  }

  show(view) {
    this.view = view;
    setView(this.svg, view);
  }

  zoom(factor, cx, cy) {
    const w = Math.min(Math.max(this.view.w * factor, this.map.home.w / 40), this.map.home.w * 8);
    const f = w / this.view.w;
    this.show({ x: cx - (cx - this.view.x) * f, y: cy - (cy - this.view.y) * f, w, h: this.view.h * f });
  }

  toMap(clientX, clientY) {
    const point = new DOMPoint(clientX, clientY).matrixTransform(this.svg.getScreenCTM().inverse());
    return [point.x, point.y];
  }

  // Where a longitude/latitude is on screen now (browser tests click there).
  screenPoint(lon, lat) {
    const [x, y] = this.map.project(lon, lat);
    const point = new DOMPoint(x, y).matrixTransform(this.svg.getScreenCTM());
    return { x: point.x, y: point.y };
  }

  pick(x, y) {
    const [lon, lat] = this.map.unproject(x, y);
    this.choice = { latitude: Number(lat.toFixed(6)), longitude: Number(lon.toFixed(6)) };
    this.svg.querySelector(".pin")?.remove();
    this.svg.querySelectorAll(".picked-grid").forEach((n) => n.classList.remove("picked-grid"));
    this.svg.append(pin(x, y, 0));
    setView(this.svg, this.view);
    const grid = this.map.gridAt(lon, lat);
    if (grid) this.svg.querySelector(`[data-code="${grid.properties.code}"]`)?.classList.add("picked-grid");
    const name = grid ? GridMap.label(grid, this.locale) : this.t("outside");
    this.dialog.querySelector(".picked").textContent =
      `📍 ${name} · ${this.choice.latitude.toFixed(5)}, ${this.choice.longitude.toFixed(5)}`;
    this.dialog.querySelector("button[value=send]").disabled = false;
  }

  listen() {
    const svg = this.svg;
    let drag = null;
    svg.addEventListener("wheel", (event) => {
      event.preventDefault();
      const [x, y] = this.toMap(event.clientX, event.clientY);
      this.zoom(event.deltaY < 0 ? 1 / 1.25 : 1.25, x, y);
    }, { passive: false });
    svg.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, view: { ...this.view }, moved: false };
      svg.setPointerCapture(event.pointerId);
    });
    svg.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 4) return; // a click, not a drag
      drag.moved = true;
      const perPixel = drag.view.w / svg.clientWidth;
      this.show({ ...drag.view, x: drag.view.x - dx * perPixel, y: drag.view.y - dy * perPixel });
    });
    svg.addEventListener("pointerup", (event) => {
      if (drag && !drag.moved) this.pick(...this.toMap(event.clientX, event.clientY));
      drag = null;
    });
  }
}
