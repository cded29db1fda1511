// The technician's page: draws the site from /api/site, follows /api/stream (SSE, 10 Hz).
// Plain JS, no build step, no external resources.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const LANE_W = 14, BOX = 62, ARM = 235, C = 250;
const COLOURS = { red: "#e5484d", yellow: "#f5c518", green: "#30c452", flash_red: "#e5484d",
  flash_yellow: "#f5c518", dark: "#2b3038" };
const $ = (id) => document.getElementById(id);
let site = null, heads = [], crosswalks = [], detMarks = {}, logFilter = {};

function el(tag, attrs, parent, ns) {
  const e = ns ? document.createElementNS(SVGNS, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}
const svgEl = (tag, attrs, parent) => el(tag, attrs, parent, true);

// -- the drawing ---------------------------------------------------------------------------
// Compass bearing b: the arm points (sin b, -cos b) on screen. Traffic keeps right: a
// vehicle driving in toward the centre has the inbound lanes on its right.
function drawSite() {
  const svg = $("intersection");
  svg.innerHTML = "";
  svgEl("rect", { x: 0, y: 0, width: 500, height: 500, fill: "#1a2a1a" }, svg);
  const roads = svgEl("g", {}, svg), marks = svgEl("g", {}, svg);
  svgEl("circle", { cx: C, cy: C, r: BOX + 6, fill: "#3a3f47" }, roads);
  for (const arm of site.arms) {
    const b = arm.bearing_deg * Math.PI / 180;
    const d = [Math.sin(b), -Math.cos(b)];
    const r = [-Math.cos(b), -Math.sin(b)]; // right of a vehicle driving in
    const n = Math.max(1, arm.lanes.length);
    const half = n * LANE_W;
    const at = (along, off) => [C + d[0] * along + r[0] * off, C + d[1] * along + r[1] * off];
    const quad = (a0, a1, o0, o1) => [at(a0, o0), at(a1, o0), at(a1, o1), at(a0, o1)]
      .map((p) => p.join(",")).join(" ");
    svgEl("polygon", { points: quad(BOX - 10, ARM, -half, half), fill: "#3a3f47" }, roads);
    svgEl("line", { x1: at(BOX + 26, 0)[0], y1: at(BOX + 26, 0)[1], x2: at(ARM, 0)[0], y2: at(ARM, 0)[1],
      stroke: "#e8d36a", "stroke-width": 2 }, marks);
    svgEl("polygon", { points: quad(BOX + 24, BOX + 27, 0, half), fill: "#ddd" }, marks); // stop bar
    const label = at(ARM - 12, -half - 12);
    svgEl("text", { x: label[0], y: label[1], fill: "#ccd", "font-size": 14, "text-anchor": "middle",
      "dominant-baseline": "middle", text: arm.id }, marks);
    arm.lanes.forEach((lane, k) => {
      const off = (k + 0.5) * LANE_W;
      const p = at(BOX + 36, off);
      const arrow = { L: "\u21b0", T: "\u2191", R: "\u21b1" }[lane.turn] || lane.turn;
      const t = at(BOX + 56, off);
      svgEl("text", { x: t[0], y: t[1], fill: "#9aa", "font-size": 11, "text-anchor": "middle",
        "dominant-baseline": "middle", transform: `rotate(${arm.bearing_deg + 180} ${t[0]} ${t[1]})`,
        text: arrow }, marks);
      const g = svgEl("circle", { cx: p[0], cy: p[1], r: 5.5, fill: COLOURS.dark, stroke: "#000",
        "stroke-width": 1.5, "data-head": lane.head ? `${lane.head.kind}:${lane.head.id}` : "none",
        "data-movement": lane.movement, "data-lamp": "dark" }, marks);
      svgEl("title", { text: `${lane.movement}: ${lane.head ? lane.head.kind + " " + lane.head.id
        + (lane.head.permissive ? " (permissive)" : "") : "no signal"}` }, g);
      heads.push({ node: g, head: lane.head });
    });
    arm.detectors.forEach((id, k) => {
      const det = site.detectors.find((x) => x.id === id);
      let lane = arm.lanes.findIndex((l) => l.head && l.head.kind === "phase" && det.calls.concat(det.extends).includes(Number(l.head.id)));
      if (lane < 0) lane = 0;
      const p = at(BOX + 70 + 16 * (k % 4), (lane + 0.5) * LANE_W);
      const m = svgEl("rect", { x: p[0] - 4, y: p[1] - 4, width: 8, height: 8, fill: "none",
        stroke: "#d97706", "stroke-width": 1.5, "data-detector": id }, marks);
      svgEl("title", { text: `detector ${id} (input ${det.input})` }, m);
      detMarks[id] = m;
    });
    if (arm.crosswalk_phase !== null) {
      const g = svgEl("g", { "data-crosswalk": arm.crosswalk_phase, "data-ped": "dark" }, marks);
      for (let o = -half + 2; o < half - 2; o += 6) {
        svgEl("polygon", { points: quad(BOX + 8, BOX + 20, o, o + 3.5), fill: "#666" }, g);
      }
      const p = at(BOX + 14, half + 10);
      svgEl("circle", { cx: p[0], cy: p[1], r: 5, fill: COLOURS.dark, "data-ped-head": arm.crosswalk_phase }, g);
      crosswalks.push({ node: g, phase: arm.crosswalk_phase });
    }
  }
}

function lampOf(state, head) {
  if (!head) return "dark";
  if (head.kind === "overlap") {
    const o = state.overlaps.find((x) => x.id === head.id);
    return o ? o.lamp : "dark";
  }
  const p = state.phases.find((x) => String(x.id) === head.id);
  if (!p) return "dark";
  // A permissive movement shows its phase's green as a flashing yellow (yield).
  return head.permissive && p.lamp === "green" ? "flash_yellow" : p.lamp;
}

function paintDrawing(state) {
  for (const h of heads) {
    const lamp = lampOf(state, h.head);
    h.node.setAttribute("fill", COLOURS[lamp] || COLOURS.dark);
    h.node.setAttribute("data-lamp", lamp);
    h.node.classList.toggle("blink", lamp.startsWith("flash"));
  }
  for (const cw of crosswalks) {
    const p = state.phases.find((x) => x.id === cw.phase);
    const ped = p ? p.ped : "dark";
    cw.node.setAttribute("data-ped", ped);
    const fill = ped === "walk" ? "#f4f4f4" : ped === "dark" ? "#555" : "#c0392b";
    for (const s of cw.node.querySelectorAll("polygon")) s.setAttribute("fill", fill);
    const head = cw.node.querySelector("circle");
    head.setAttribute("fill", ped === "walk" ? "#f4f4f4" : ped === "dark" ? COLOURS.dark : COLOURS.red);
    head.classList.toggle("blink", ped === "flash_dont_walk");
  }
  for (const d of state.detectors) {
    const m = detMarks[d.id];
    if (m) m.setAttribute("fill", d.on ? "#d97706" : "none");
  }
}

// -- ring-barrier diagram ------------------------------------------------------------------
function drawRings() {
  const box = $("rings");
  box.innerHTML = "";
  for (const ring of site.rings) {
    const row = el("div", { class: "ring" }, box);
    el("div", { class: "label", text: `ring ${ring.ring}` }, row);
    let group = null;
    for (const p of ring.phases) {
      if (group !== null && p.group !== group) el("div", { class: "barrier", title: "barrier" }, row);
      group = p.group;
      const cell = el("div", { class: "phase", id: `phase-${p.id}`, "data-phase": p.id }, row);
      el("div", { class: "id", text: `\u03a6${p.id}` }, cell);
      el("div", { class: "mv", text: p.movements.join(" ") || "(ped only)" }, cell);
      el("div", { class: "tm", text: "-" }, cell);
      el("div", { class: "bar", title: "max timer left (full bar: 60 s)" }, cell).appendChild(el("i"));
      el("div", { class: "flags" }, cell);
    }
  }
  const dets = $("detectors");
  dets.innerHTML = "";
  for (const d of site.detectors) {
    el("span", { class: "det", id: `det-${d.id}`, title: `input ${d.input}; calls ${d.calls.join(",")}`
      + (d.ped ? " (push button)" : ""), text: (d.ped ? "PB" : "D") + d.id }, dets);
  }
  const sel = $("phase");
  sel.innerHTML = "";
  for (const ring of site.rings) for (const p of ring.phases) el("option", { value: p.id, text: `\u03a6${p.id}` }, sel);
}

function paintRings(state) {
  for (const p of state.phases) {
    const cell = $(`phase-${p.id}`);
    if (!cell) continue;
    cell.className = `phase ${p.lamp}`;
    cell.style.background = p.lamp === "green" ? "#17401f" : p.lamp === "yellow" ? "#4d3f0a" : "";
    const t = p.timer;
    cell.querySelector(".tm").textContent = t.left_s === null ? t.interval.replace("_", " ")
      : `${t.interval.replace("_", " ")} ${t.left_s.toFixed(1)} s`;
    const bar = cell.querySelector(".bar i");
    const frac = t.max_left_s !== null && t.max_left_s !== undefined ? Math.min(1, t.max_left_s / 60) : 0;
    bar.style.width = `${(frac * 100).toFixed(0)}%`;
    const flags = [];
    if (p.call) flags.push("call");
    if (p.ped_call) flags.push("ped");
    if (p.hold) flags.push("hold");
    if (p.omit) flags.push("omit");
    if (p.ped !== "dark" && p.ped !== "dont_walk") flags.push(p.ped === "walk" ? "WALK" : "FDW");
    cell.querySelector(".flags").innerHTML = flags.map((f) => `<span class="flag">${f}</span>`).join("");
  }
  for (const d of state.detectors) {
    const e = $(`det-${d.id}`);
    if (e) e.className = d.on ? "det on" : "det";
  }
}

// -- header, board, link -------------------------------------------------------------------
function badge(node, text, cls) { node.textContent = text; node.className = `badge ${cls}`; }

function paintHeader(state) {
  badge($("mode"), state.mode, state.mode);
  $("plan").textContent = state.plan;
  const b = state.board;
  $("board-state").textContent = b.link === "lost" ? `NO LINK (last ${b.state}; its watchdog flashes it)`
    : b.state + (b.fault !== "NONE" ? ` (${b.fault})` : "");
  $("link-state").textContent = state.link.replace("_", " ");
  $("camera-state").textContent = state.cameras.replace("_", " ");
  const ifs = Object.entries(state.interfaces || {});  // ATSPM, J2735, NTCIP: those running
  $("interfaces-box").hidden = !ifs.length;
  $("interfaces").textContent = ifs.map(([name, text]) => `${name} ${text}`).join(" | ");
  $("jitter").textContent = state.jitter_ms.p99.toFixed(1);
  $("clock").textContent = `${state.wall.slice(11, 19)} UTC`;
}

function paintBoard(state) {
  const b = state.board;
  const rows = site.channels.map((ch, i) => {
    const want = b.channels[i] || "dark";
    const lamp = b.lamps ? b.lamps[i] || "dark" : null;
    return `<tr><td>${ch.id}</td><td>${ch.kind} ${ch.source}</td><td><span class="lamp ${want}"></span> ${want}</td>`
      + (lamp === null ? "" : `<td data-board-lamp="${ch.id}" data-lamp="${lamp}"><span class="lamp ${lamp}"></span> ${lamp}</td>`) + "</tr>";
  }).join("");
  $("board").innerHTML = `<p>port <b>${esc(b.port)}</b>, session <b>${b.session}</b>, link <b>${b.link}</b>, board <b>${b.state}</b>${b.link === "lost" ? " (last reported)" : ""}, fault <b>${b.fault}</b>`
    + (b.latched_fault ? `, <b class="latched">latched ${b.latched_fault}: an operator must recover</b>` : "")
    + (b.fault_class ? ` (${esc(b.fault_class)}${b.fault_channels && b.fault_channels.length ? ", channels " + b.fault_channels.join(", ") : ""})` : "")
    + `</p>`
    + (b.fault_record ? `<p data-fault-record>fault record: <b>${esc(b.fault_record)}</b></p>` : "")
    + `<table><thead><tr><th>ch</th><th>drives</th><th>controller</th>${b.lamps ? "<th>board lamps</th>" : ""}</tr></thead><tbody>${rows}</tbody></table>`
    + `<p class="note">frames sent ${b.stats.frames_sent ?? "-"}, status received ${b.stats.status_received ?? "-"}, retries ${b.stats.retries ?? "-"}</p>`;
}

async function refreshLink() {
  const r = await fetch("/api/link");
  if (r.status === 401) { showLogin("your session ended: log in again"); return; }
  const info = await r.json();
  if (!info.configured) { $("link").innerHTML = "<p>not configured on this device</p>"; return; }
  const s = info.status || {};
  $("link").innerHTML = "<table>" + Object.entries(s).map(([k, v]) =>
    `<tr><td>${esc(k)}</td><td>${esc(typeof v === "object" ? JSON.stringify(v) : String(v))}</td></tr>`).join("") + "</table>";
}

// -- cameras -------------------------------------------------------------------------------
async function refreshCameras() {
  const r = await fetch("/api/cameras");
  if (r.status === 401) { showLogin("your session ended: log in again"); return; }
  const info = await r.json();
  const box = $("cameras");
  if (!info.configured) { box.innerHTML = "<p>no cameras configured on this device</p>"; return; }
  if (!info.cameras.length) { box.innerHTML = "<p>no cameras</p>"; return; }
  const seen = new Set();
  for (const cam of info.cameras) {
    const id = String(cam.id);
    seen.add(id);
    let node = box.querySelector(`[data-camera="${CSS.escape(id)}"]`);
    if (!node) {
      node = el("div", { class: "camera", "data-camera": id }, box);
      el("h3", {}, node);
      const frame = el("div", { class: "frame" }, node);
      el("img", { alt: `camera ${id}` }, frame);
      svgEl("svg", { preserveAspectRatio: "none" }, frame);
      const edit = el("button", { type: "button", class: "edit-zones", "data-edit-zones": id, text: "Edit zones" }, node);
      edit.addEventListener("click", () => startEditing(id));
      el("table", {}, node);
    }
    if (editing && editing.cam === id) continue;  // the editor holds the still and its overlay
    lastSeen[id] = cam;
    const ok = cam.health === "ok";
    node.querySelector("h3").innerHTML = `${esc(id)} <span class="badge ${ok ? "ok" : "bad"}" data-health="${esc(cam.health)}">${esc(cam.health)}</span>`
      + (cam.fps !== undefined ? ` ${Number(cam.fps).toFixed(1)} fps` : "");
    const img = node.querySelector("img"), svg = node.querySelector("svg");
    img.onload = () => { svg.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`); };
    img.src = `/api/cameras/${encodeURIComponent(id)}/frame.jpg?t=${Date.now()}`;
    svg.innerHTML = "";
    for (const z of cam.zones || []) {
      const pts = (z.polygon || []).map((p) => p.join(",")).join(" ");
      svgEl("polygon", { points: pts, fill: z.presence ? "rgba(217,119,6,0.35)" : "rgba(80,160,255,0.12)",
        stroke: z.presence ? "#d97706" : "#50a0ff", "stroke-width": 2, "data-zone": z.id }, svg);
      if (z.polygon && z.polygon.length) {
        svgEl("text", { x: z.polygon[0][0] + 3, y: z.polygon[0][1] + 14, fill: "#fff", "font-size": 14, text: z.id }, svg);
      }
    }
    for (const d of cam.detections || []) {
      const [x1, y1, x2, y2] = d.box;
      svgEl("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, fill: "none", stroke: "#30c452", "stroke-width": 2 }, svg);
    }
    node.querySelector("table").innerHTML = "<tr><th>zone</th><th>presence</th><th>count</th><th>queue (veh)</th><th>queue (m)</th></tr>"
      + (cam.zones || []).map((z) => `<tr><td>${esc(z.id)}</td><td>${z.presence ? "yes" : "no"}</td><td>${z.count ?? "-"}</td><td>${z.queue_veh ?? "-"}</td><td>${z.queue_m ?? "-"}</td></tr>`).join("");
  }
  for (const node of box.querySelectorAll("[data-camera]")) if (!seen.has(node.dataset.camera)) node.remove();
}

// -- the zone editor: draw and move zones and count lines on a still of the camera -----------
// One camera at a time. Its picture stops (a still) and its overlay becomes the editor's:
// drag a corner or a line's end, add a zone (4 clicks) or a line (2 clicks), select one to
// change its id, approach, lane, kind, detector or delete it. Save sends the whole layout
// with the site file's hash it was loaded with; the device checks it with the site
// file's own rules and saves and runs it, or says why not.
let editing = null;  // {cam, layout, zones, lines, sel, adding, drag, node, svg, boxes}
const lastSeen = {};  // camera id -> its last /api/cameras entry (the still's boxes)

async function startEditing(cam) {
  stopEditing();
  const node = document.querySelector(`[data-camera="${CSS.escape(cam)}"]`);
  alertIn(node, "");
  const r = await fetch(`/api/cameras/${encodeURIComponent(cam)}/layout`);
  const layout = await r.json();
  if (!r.ok) { alertIn(node, layout.error); return; }
  const svg = node.querySelector("svg");
  const seen = lastSeen[cam];
  editing = { cam, layout, node, svg, sel: null, adding: null, drag: null,
    boxes: seen ? (seen.detections || []).map((d) => d.box) : [],
    zones: layout.zones.map((z) => ({ ...z, polygon: z.polygon.map((p) => p.slice()) })),
    lines: layout.lines.map((l) => ({ ...l, points: l.points.map((p) => p.slice()) })) };
  node.querySelector(".frame").classList.add("editing");
  node.querySelector("[data-edit-zones]").hidden = true;
  svg.setAttribute("viewBox", `0 0 ${layout.width} ${layout.height}`);
  svg.addEventListener("pointerdown", onEditDown);
  svg.addEventListener("pointermove", onEditMove);
  svg.addEventListener("pointerup", onEditUp);
  buildEditorBox();
  drawEditor();
}

function stopEditing() {
  if (!editing) return;
  const { node, svg } = editing;
  svg.removeEventListener("pointerdown", onEditDown);
  svg.removeEventListener("pointermove", onEditMove);
  svg.removeEventListener("pointerup", onEditUp);
  node.querySelector(".frame").classList.remove("editing");
  node.querySelector("[data-edit-zones]").hidden = false;
  const box = node.querySelector("[data-editor]");
  if (box) box.remove();
  editing = null;
}

function alertIn(node, text) {
  let p = node.querySelector(".edit-note");
  if (!p) p = el("p", { class: "edit-note err" }, node);
  p.textContent = text;
}

function buildEditorBox() {
  const { node, layout } = editing;
  let box = node.querySelector("[data-editor]");
  if (box) box.remove();
  box = el("div", { class: "editor", "data-editor": editing.cam });
  node.insertBefore(box, node.querySelector("table"));
  const tools = el("div", { class: "buttons" }, box);
  for (const [ed, text] of [["add-zone", "Add zone"], ["add-line", "Add line"], ["delete", "Delete selected"]]) {
    el("button", { type: "button", "data-ed": ed, text }, tools).addEventListener("click", () => editTool(ed));
  }
  el("p", { class: "note", "data-ed-hint": "" }, box);
  el("div", { class: "props", "data-ed-props": "" }, box);
  const save = el("div", { class: "buttons" }, box);
  el("label", { text: "user " }, save).appendChild(el("input", { "data-ed-user": "", maxlength: 32, autocomplete: "off" }));
  el("label", { text: " password " }, save).appendChild(el("input", { "data-ed-password": "", type: "password", maxlength: 256, autocomplete: "off" }));
  const saveBtn = el("button", { type: "button", "data-ed": "save", text: "Save" }, save);
  saveBtn.addEventListener("click", saveLayout);
  el("button", { type: "button", "data-ed": "cancel", text: "Cancel" }, save).addEventListener("click", () => {
    stopEditing(); refreshCameras();
  });
  el("p", { class: "edit-result", role: "status", "data-ed-result": "" }, box);
  el("ul", { class: "problems", "data-ed-problems": "" }, box);
  if (!layout.editable) { saveBtn.disabled = true; setResult("err", `cannot be saved here: ${layout.why}`); }
  hint();
}

function setResult(cls, text) {
  const p = editing.node.querySelector("[data-ed-result]");
  p.className = `edit-result ${cls}`; p.textContent = text;
}

function hint() {
  const a = editing.adding;
  editing.node.querySelector("[data-ed-hint]").textContent = a
    ? (a.kind === "zone" ? `click the zone's 4 corners (a queue zone: stop-bar edge first): ${a.pts.length} of 4`
      : `click the line's 2 ends: ${a.pts.length} of 2`)
    : "drag a corner or a line's end; click a zone or line to select it";
}

function editTool(ed) {
  if (ed === "add-zone" || ed === "add-line") {
    editing.adding = { kind: ed === "add-zone" ? "zone" : "line", pts: [] };
  } else if (ed === "delete" && editing.sel) {
    const list = editing.sel.kind === "zone" ? editing.zones : editing.lines;
    list.splice(editing.sel.i, 1);
    editing.sel = null;
  }
  hint(); drawEditor(); drawProps();
}

function framePoint(e) {
  const { svg, layout } = editing;
  const pt = svg.createSVGPoint();
  pt.x = e.clientX; pt.y = e.clientY;
  const p = pt.matrixTransform(svg.getScreenCTM().inverse());
  const clamp = (v, hi) => Math.round(Math.min(hi, Math.max(0, v)) * 10) / 10;
  return [clamp(p.x, layout.width), clamp(p.y, layout.height)];
}

function freeId(prefix, taken) {
  let n = 1;
  while (taken.has(`${prefix}${n}`)) n += 1;
  return `${prefix}${n}`;
}

function onEditDown(e) {
  const t = e.target;
  if (t.dataset && t.dataset.handle) {
    const [kind, i, k] = t.dataset.handle.split(":");
    editing.drag = { kind, i: Number(i), k: Number(k) };
    editing.sel = { kind, i: Number(i) };
    editing.svg.setPointerCapture(e.pointerId);  // the svg keeps the drag while handles are redrawn
    e.preventDefault();
    drawProps();
    return;
  }
  const a = editing.adding;
  if (a) {
    a.pts.push(framePoint(e));
    const need = a.kind === "zone" ? 4 : 2;
    if (a.pts.length === need) {
      const taken = new Set([...editing.zones.map((z) => z.id), ...editing.lines.map((l) => l.id)]);
      const near = editing.zones[0] || editing.lines[0];
      const approach = near ? near.approach : (editing.layout.approaches[0] || "");
      if (a.kind === "zone") {
        editing.zones.push({ id: freeId(`${editing.cam}-zone`, taken), approach, lane: 0, polygon: a.pts,
          kind: "presence", detector: null, length_m: null, fallback: "loop" });
        editing.sel = { kind: "zone", i: editing.zones.length - 1 };
      } else {
        editing.lines.push({ id: freeId(`${editing.cam}-line`, taken), approach, lane: null, points: a.pts });
        editing.sel = { kind: "line", i: editing.lines.length - 1 };
      }
      editing.adding = null;
      drawProps();
    }
    hint(); drawEditor();
    return;
  }
  const zone = t.dataset ? t.dataset.zone : undefined, line = t.dataset ? t.dataset.line : undefined;
  if (zone !== undefined) editing.sel = { kind: "zone", i: editing.zones.findIndex((z) => z.id === zone) };
  else if (line !== undefined) editing.sel = { kind: "line", i: editing.lines.findIndex((l) => l.id === line) };
  else editing.sel = null;
  drawEditor(); drawProps();
}

function onEditMove(e) {
  const d = editing && editing.drag;
  if (!d) return;
  const p = framePoint(e);
  if (d.kind === "zone") editing.zones[d.i].polygon[d.k] = p;
  else editing.lines[d.i].points[d.k] = p;
  drawEditor();
}

function onEditUp(e) {
  if (!editing || !editing.drag) return;
  editing.drag = null;
  if (editing.svg.hasPointerCapture(e.pointerId)) editing.svg.releasePointerCapture(e.pointerId);
}

function drawEditor() {
  const { svg, layout, sel } = editing;
  svg.innerHTML = "";
  const r = Math.max(3, layout.width / 90);
  for (const [x1, y1, x2, y2] of editing.boxes) {  // the model's boxes on this still
    svgEl("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, class: "ed-box" }, svg);
  }
  editing.zones.forEach((z, i) => {
    const on = sel && sel.kind === "zone" && sel.i === i;
    svgEl("polygon", { points: z.polygon.map((p) => p.join(",")).join(" "), class: on ? "ed-zone sel" : "ed-zone",
      "data-zone": z.id }, svg);
    if (z.kind === "queue" && z.polygon.length > 1) {  // its stop-bar edge
      const [[x1, y1], [x2, y2]] = z.polygon;
      svgEl("line", { x1, y1, x2, y2, class: "ed-stopbar" }, svg);
    }
    const n = z.polygon.length || 1;
    const cx = z.polygon.reduce((a, p) => a + p[0], 0) / n, cy = z.polygon.reduce((a, p) => a + p[1], 0) / n;
    svgEl("text", { x: cx, y: cy, class: "ed-label", "text-anchor": "middle", text: z.id }, svg);
  });
  editing.lines.forEach((l, i) => {
    const on = sel && sel.kind === "line" && sel.i === i;
    const [[x1, y1], [x2, y2]] = l.points;
    svgEl("line", { x1, y1, x2, y2, class: on ? "ed-line sel" : "ed-line", "data-line": l.id }, svg);
    svgEl("text", { x: x2 + 3, y: y2 - 4, class: "ed-label", text: l.id }, svg);
  });
  editing.zones.forEach((z, i) => z.polygon.forEach(([x, y], k) => svgEl("circle", { cx: x, cy: y, r, class: "ed-handle",
    "data-handle": `zone:${i}:${k}`, "data-zone-handle": z.id, "data-k": k }, svg)));
  editing.lines.forEach((l, i) => l.points.forEach(([x, y], k) => svgEl("circle", { cx: x, cy: y, r, class: "ed-handle",
    "data-handle": `line:${i}:${k}`, "data-line-handle": l.id, "data-k": k }, svg)));
  const a = editing.adding;
  if (a && a.pts.length) {
    svgEl("polyline", { points: a.pts.map((p) => p.join(",")).join(" "), class: "ed-adding" }, svg);
    for (const [x, y] of a.pts) svgEl("circle", { cx: x, cy: y, r: r * 0.7, class: "ed-adding-pt" }, svg);
  }
}

function drawProps() {
  const box = editing.node.querySelector("[data-ed-props]");
  box.innerHTML = "";
  const sel = editing.sel;
  if (!sel || sel.i < 0) return;
  const item = sel.kind === "zone" ? editing.zones[sel.i] : editing.lines[sel.i];
  const { approaches, detectors } = editing.layout;
  const field = (label, prop, input) => {
    el("label", { text: `${label} ` }, box).appendChild(input);
    input.setAttribute("data-prop", prop);
    input.addEventListener("change", () => {
      const v = input.value;
      if (prop === "lane") item.lane = v === "" ? (sel.kind === "line" ? null : 0) : Number(v);
      else if (prop === "length_m") item.length_m = v === "" ? null : Number(v);
      else if (prop === "detector") item.detector = v === "" ? null : Number(v);
      else item[prop] = v;
      drawEditor();
    });
  };
  const select = (options, value) => {
    const s = el("select");
    for (const [v, text] of options) el("option", { value: v, text }, s);
    s.value = value === null || value === undefined ? "" : String(value);
    return s;
  };
  el("b", { text: `${sel.kind} ` }, box);
  field("id", "id", el("input", { value: item.id, maxlength: 32, size: 12 }));
  field("approach", "approach", select(approaches.map((a) => [a, a]), item.approach));
  field("lane", "lane", el("input", { type: "number", min: 0, max: 15, value: item.lane ?? "" }));
  if (sel.kind === "zone") {
    field("kind", "kind", select([["presence", "presence"], ["queue", "queue"]], item.kind));
    field("length (m, queue)", "length_m", el("input", { type: "number", min: 0, step: "any", value: item.length_m ?? "" }));
    field("drives detector", "detector", select([["", "none"], ...detectors.map((d) => [d, `D${d}`])], item.detector));
    field("fallback", "fallback", select([["loop", "loop"], ["recall", "recall"]], item.fallback));
  }
}

async function saveLayout() {
  const { node, cam, layout } = editing;
  const user = node.querySelector("[data-ed-user]").value.trim();
  const password = node.querySelector("[data-ed-password]").value;
  const problems = node.querySelector("[data-ed-problems]");
  problems.innerHTML = "";
  if (!user || !password) { setResult("err", "enter your user and password first"); return; }
  const body = { user, password, site_hash: layout.site_hash, zones: editing.zones, lines: editing.lines };
  setResult("", "saving...");
  const r = await fetch(`/api/cameras/${encodeURIComponent(cam)}/layout`, { method: "PUT",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  node.querySelector("[data-ed-password]").value = "";
  const res = await r.json();
  if (r.ok) {
    stopEditing();
    alertIn(node, "");
    const note = node.querySelector(".edit-note");
    note.className = "edit-note ok";
    note.setAttribute("data-saved", res.site_hash);
    note.textContent = `saved to the site file and running: ${res.zones.length} zones, ${res.lines.length} lines`;
    refreshCameras();
    return;
  }
  setResult("err", `refused (${r.status}): ${r.status === 422 && res.problems && res.problems.length
    ? "the site checks found these problems; nothing was saved" : res.error}`);
  for (const p of res.problems || []) el("li", { text: p }, problems);
}

// -- history -------------------------------------------------------------------------------
function bars(canvas, values, colour) {
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...values.filter((v) => v !== null));
  const bw = w / 60;
  ctx.fillStyle = colour;
  values.forEach((v, i) => {
    if (v === null) return;
    const bh = (v / max) * (h - 14);
    ctx.fillRect(w - (values.length - i) * bw + 1, h - bh, bw - 2, bh);
  });
  ctx.fillStyle = "#98a2b3";
  ctx.font = "11px sans-serif";
  ctx.fillText(`max ${max.toFixed(max < 10 ? 1 : 0)}`, 4, 11);
}

async function refreshHistory() {
  const r = await fetch("/api/history");
  if (r.status === 401) { showLogin("your session ended: log in again"); return; }
  const h = await r.json();
  bars($("chart-counts"), h.minutes.map((m) => m.counts), "#50a0ff");
  bars($("chart-wait"), h.minutes.map((m) => m.mean_wait_s), "#d97706");
}

// -- event log -----------------------------------------------------------------------------
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }
const LEVELS = { debug: 0, info: 1, warning: 2, error: 3 };

function passes(ev) {
  if (logFilter.source && ev.source !== logFilter.source) return false;
  if (logFilter.level && LEVELS[ev.level] < LEVELS[logFilter.level]) return false;
  const t = (logFilter.text || "").toLowerCase();
  return !t || `${ev.name} ${ev.subject} ${ev.detail}`.toLowerCase().includes(t);
}

function addLog(events) {
  const body = $("log").querySelector("tbody");
  for (const ev of events) {
    if (!passes(ev)) continue;
    const tr = el("tr", { class: ev.level, "data-event": ev.name }, null);
    tr.innerHTML = `<td>${ev.wall.slice(11, 23)}</td><td>${ev.t_s === null ? "" : ev.t_s.toFixed(1)}</td><td>${esc(ev.source)}</td>`
      + `<td>${esc(ev.name)}</td><td>${esc(ev.subject)}</td><td>${esc(ev.detail)}</td>`;
    body.insertBefore(tr, body.firstChild);
  }
  while (body.children.length > 300) body.removeChild(body.lastChild);
}

async function reloadLog() {
  logFilter = { source: $("log-source").value, level: $("log-level").value, text: $("log-text").value };
  const q = new URLSearchParams({ limit: "300" });
  if (logFilter.source) q.set("source", logFilter.source);
  if (logFilter.level) q.set("level", logFilter.level);
  if (logFilter.text) q.set("text", logFilter.text);
  const r = await fetch(`/api/events?${q}`);
  $("log").querySelector("tbody").innerHTML = "";
  if (r.ok) addLog(await r.json());
}

// -- manual control ------------------------------------------------------------------------
const ACTION_TEXT = { all_red: "ALL RED", flash: "FLASH", automatic: "return to AUTOMATIC",
  hold: "HOLD phase", call: "PLACE A CALL on phase" };

async function sendControl(action) {
  const out = $("control-result");
  const user = $("user").value.trim(), password = $("password").value;
  if (!user || !password) { out.className = "err"; out.textContent = "enter your user and password first"; return; }
  const body = { action, user, password };
  let what = ACTION_TEXT[action];
  if (action === "hold" || action === "call") {
    body.phase = Number($("phase").value);
    what += ` ${body.phase}`;
    if (action === "call" && $("ped").checked) { body.ped = true; what += " (pedestrian)"; }
  }
  if (!window.confirm(`Send ${what} to the controller at ${site.name}?\nIt takes effect when the clearances allow.`)) {
    out.className = ""; out.textContent = "cancelled"; return;
  }
  out.className = ""; out.textContent = "sending...";
  const r = await fetch("/api/control", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const res = await r.json();
  if (r.ok) { out.className = "ok"; out.textContent = `${res.result}: ${res.action} by ${res.user} at ${res.at.slice(11, 19)} UTC: ${res.detail}`; }
  else { out.className = "err"; out.textContent = `refused (${r.status}): ${res.error}`; }
  $("password").value = "";
}

// -- live stream ---------------------------------------------------------------------------
let lastState = null;
function connect() {
  const es = new EventSource("/api/stream");
  es.addEventListener("state", (e) => {
    const state = JSON.parse(e.data);
    lastState = state;
    paintHeader(state); paintDrawing(state); paintRings(state); paintBoard(state);
    badge($("live"), "live", "live");
  });
  es.addEventListener("log", (e) => addLog(JSON.parse(e.data)));
  es.onerror = () => { badge($("live"), "reconnecting", "bad"); };
}

// -- login: reads need a session (an HttpOnly cookie the browser sends with every fetch) --
let started = false;
function showLogin(why) {
  $("main").hidden = true; $("who").hidden = true; $("login-panel").hidden = false;
  $("login-result").className = why ? "err" : ""; $("login-result").textContent = why || "";
  $("login-user").focus();
}

async function login(e) {
  e.preventDefault();  // sent by fetch, never submitted (CSP: form-action 'none')
  const user = $("login-user").value.trim(), password = $("login-password").value;
  $("login-result").className = ""; $("login-result").textContent = "checking...";
  const r = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user, password }) });
  $("login-password").value = "";
  if (!r.ok) { const res = await r.json(); showLogin(`refused (${r.status}): ${res.error}`); return; }
  if (!$("user").value) $("user").value = user;
  await signedIn(user);
}

async function signedIn(user) {
  $("login-panel").hidden = true; $("main").hidden = false; $("who").hidden = false;
  $("who-user").textContent = user;
  if (!started) { started = true; await start(); }
}

async function main() {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", async () => { await fetch("/api/logout", { method: "POST" }); location.reload(); });
  const r = await fetch("/api/session");
  if (r.ok) await signedIn((await r.json()).user); else showLogin("");
}

async function start() {
  $("control").addEventListener("submit", (e) => e.preventDefault());  // Enter never submits (CSP: no inline handlers)
  const r = await fetch("/api/site");
  site = await r.json();
  document.title = `edge: ${site.name}`;
  $("site-name").textContent = `${site.name} (${site.site})`;
  drawSite(); drawRings();
  for (const b of document.querySelectorAll("[data-action]")) b.addEventListener("click", () => sendControl(b.dataset.action));
  for (const id of ["log-source", "log-level"]) $(id).addEventListener("change", reloadLog);
  $("log-text").addEventListener("input", reloadLog);
  connect();
  refreshHistory(); refreshLink(); refreshCameras();
  setInterval(refreshHistory, 5000); setInterval(refreshLink, 2000); setInterval(refreshCameras, 1000);
}
main();
