// tinygrad_cnn's graph viewer: reads the JSON of #tg-data, lays the graph out in layers
// (longest path from the sources, then two barycentre sweeps to order each layer), draws
// it as SVG and links it to the details panel and the summary table. User text is only
// ever set as textContent, never parsed as HTML.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("tg-data").textContent);
  const byId = new Map(data.nodes.map((n) => [n.id, n]));
  const SVG = "http://www.w3.org/2000/svg";
  const state = { side: "forward", selected: null, failuresOnly: false, matches: new Set(),
                  view: { x: 0, y: 0, scale: 1 }, units: [], positions: new Map() };
  const blocks = new Map(data.blocks.map((b) => [b.id, Object.assign({}, b)]));
  const blockOf = new Map();
  data.blocks.forEach((b) => b.members.forEach((m) => blockOf.set(m, b.id)));
  const partners = new Map();
  data.nodes.forEach((n) => {
    if (n.kind === "op" && n.partner) {
      partners.set(n.id, [n.partner]);
      const back = partners.get(n.partner) || [];
      back.push(n.id);
      partners.set(n.partner, back);
    }
  });
  const producer = new Map();
  const consumers = new Map();
  data.nodes.forEach((n) => {
    if (n.kind !== "op") return;
    producer.set(n.output, n.id);
    n.inputs.forEach((t) => { (consumers.get(t) || consumers.set(t, []).get(t)).push(n.id); });
  });

  // ---------------------------------------------------------------- what is drawn
  function opsOfSide() { return data.nodes.filter((n) => n.kind === "op" && n.side === state.side); }

  function unitOf(opId) {
    const block = blockOf.get(opId);
    return block && !blocks.get(block).expanded ? block : opId;
  }

  function computeUnits() {
    const units = new Map();
    const edges = new Set();
    const ops = opsOfSide();
    ops.forEach((op) => {
      const unit = unitOf(op.id);
      if (!units.has(unit)) units.set(unit, { id: unit, type: blocks.has(unit) ? "block" : "op" });
    });
    ops.forEach((op) => {
      const unit = unitOf(op.id);
      op.inputs.forEach((t) => {
        const from = producer.get(t);
        if (from && byId.get(from).side === state.side) {
          const source = unitOf(from);
          if (source !== unit) edges.add(source + "\u0001" + unit);
        } else if (unit === op.id) {
          const tensor = byId.get(t);
          if (tensor && tensor.kind === "tensor" && (tensor.leaf === "parameter" || tensor.leaf === "input" || tensor.side === "backward")) {
            if (!units.has(t)) units.set(t, { id: t, type: "tensor" });
            edges.add(t + "\u0001" + unit);
          }
        }
      });
    });
    return { units: [...units.values()], edges: [...edges].map((e) => e.split("\u0001")) };
  }

  // ---------------------------------------------------------------- layout
  function label(unit) {
    if (unit.type === "block") {
      const b = blocks.get(unit.id);
      return b.repeats > 1 ? b.label + "  \u00d7" + b.repeats : b.label;
    }
    const n = byId.get(unit.id);
    if (n.kind === "op") return n.name;
    return (n.name ? n.name + " " : "") + "(" + n.shape.join(", ") + ")";
  }

  function size(unit) {
    const text = label(unit);
    return { w: Math.min(360, 16 + 6.6 * text.length), h: unit.type === "tensor" ? 26 : 30 };
  }

  function layout(units, edges) {
    const index = new Map(units.map((u, k) => [u.id, k]));
    const incoming = units.map(() => []);
    const outgoing = units.map(() => []);
    edges.forEach(([a, b]) => { incoming[index.get(b)].push(index.get(a)); outgoing[index.get(a)].push(index.get(b)); });
    const rank = new Array(units.length).fill(-1);
    const order = topological(units.length, incoming, outgoing);
    order.forEach((k) => { rank[k] = incoming[k].reduce((r, p) => Math.max(r, rank[p] + 1), 0); });
    // a leaf (param, input) sits just above its first user, not in the top layer
    order.forEach((k) => { if (!incoming[k].length && outgoing[k].length) rank[k] = Math.min(...outgoing[k].map((j) => rank[j])) - 1; });
    const layers = [];
    order.forEach((k) => { (layers[rank[k]] = layers[rank[k]] || []).push(k); });
    for (let r = 0; r < layers.length; r++) layers[r] = layers[r] || [];
    const position = new Array(units.length).fill(0);
    layers.forEach((layer) => layer.forEach((k, i) => { position[k] = i; }));
    for (let sweep = 0; sweep < 2; sweep++) {
      layers.forEach((layer) => {
        layer.forEach((k) => {
          const ps = incoming[k].length ? incoming[k] : outgoing[k];
          position[k] = ps.length ? ps.reduce((s, p) => s + position[p], 0) / ps.length + 1e-3 * position[k] : position[k];
        });
        layer.sort((a, b) => position[a] - position[b]);
        layer.forEach((k, i) => { position[k] = i; });
      });
    }
    const placed = new Map();
    layers.forEach((layer, r) => {
      let x = 0;
      const widths = layer.map((k) => size(units[k]).w);
      const total = widths.reduce((s, w) => s + w + 24, 0);
      layer.forEach((k, i) => {
        placed.set(units[k].id, { x: x - total / 2 + widths[i] / 2, y: r * 64, ...size(units[k]) });
        x += widths[i] + 24;
      });
    });
    return placed;
  }

  function topological(count, incoming, outgoing) {
    const pending = incoming.map((list) => list.length);
    const ready = [];
    pending.forEach((p, k) => { if (p === 0) ready.push(k); });
    const order = [];
    while (ready.length) {
      const k = ready.shift();
      order.push(k);
      outgoing[k].forEach((j) => { if (--pending[j] === 0) ready.push(j); });
    }
    return order;
  }

  // ---------------------------------------------------------------- drawing
  function element(tag, attributes, parent) {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attributes || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function draw() {
    const { units, edges } = computeUnits();
    state.units = units;
    state.positions = layout(units, edges);
    const scene = document.getElementById("tg-scene");
    scene.textContent = "";
    const svg = document.getElementById("tg-svg");
    if (!document.getElementById("tg-arrow")) {
      const defs = element("defs", {}, svg);
      const marker = element("marker", { id: "tg-arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, defs);
      element("path", { d: "M0,0 L10,5 L0,10 z", fill: "#999" }, marker);
    }
    edges.forEach(([a, b]) => {
      const p = state.positions.get(a);
      const q = state.positions.get(b);
      element("path", { class: "tg-edge", d: `M${p.x},${p.y + p.h / 2} C${p.x},${p.y + 40} ${q.x},${q.y - 40} ${q.x},${q.y - q.h / 2}` }, scene);
    });
    units.forEach((unit) => drawUnit(unit, scene));
    applyClasses();
    if (!state.fitted) { fit(); state.fitted = true; } else applyView();
  }

  function drawUnit(unit, scene) {
    const p = state.positions.get(unit.id);
    const group = element("g", { class: "tg-node", "data-node-id": unit.id, transform: `translate(${p.x},${p.y})` }, scene);
    const n = byId.get(unit.id);
    if (unit.type === "tensor") {
      group.classList.add(n.leaf === "parameter" ? "tg-param" : n.leaf === "input" ? "tg-input" : "tg-tensor");
      element("ellipse", { rx: p.w / 2, ry: p.h / 2 }, group);
    } else {
      group.classList.add(unit.type === "block" ? "tg-block" : "tg-op");
      element("rect", { x: -p.w / 2, y: -p.h / 2, width: p.w, height: p.h, rx: 5 }, group);
      if (n) {
        group.setAttribute("data-op", n.op);
        if (n.check) group.setAttribute("data-check", n.check);
      } else {
        const worst = blockCheck(unit.id);
        if (worst) group.setAttribute("data-check", worst);
      }
    }
    const text = element("text", { "text-anchor": "middle", y: 4 }, group);
    text.textContent = label(unit);
    if (unit.type === "block") text.classList.add("tg-badge");
    group.addEventListener("click", (event) => { event.stopPropagation(); onClick(unit); });
    group.addEventListener("mouseenter", () => hover(unit.id));
    group.addEventListener("mouseleave", () => hover(null));
  }

  function blockCheck(blockId) {
    const statuses = blocks.get(blockId).members.map((m) => byId.get(m).check).filter(Boolean);
    for (const s of ["failed", "nondiff", "passed", "unchecked"]) if (statuses.includes(s)) return s;
    return null;
  }

  function onClick(unit) {
    if (unit.type === "block") { expand(unit.id); return; }
    select(unit.id);
  }

  // ---------------------------------------------------------------- highlighting
  function related(id) {
    const up = new Set();
    const down = new Set();
    const walk = (start, next, seen) => {
      const stack = [start];
      while (stack.length) {
        const k = stack.pop();
        next(k).forEach((j) => { if (!seen.has(j)) { seen.add(j); stack.push(j); } });
      }
    };
    const inputsOf = (k) => { const n = byId.get(k); if (!n) return []; if (n.kind === "op") return n.inputs; const p = producer.get(k); return p ? [p] : []; };
    const usersOf = (k) => { const n = byId.get(k); if (!n) return []; if (n.kind === "op") return [n.output]; return consumers.get(k) || []; };
    walk(id, inputsOf, up);
    walk(id, usersOf, down);
    return { up, down };
  }

  function applyClasses() {
    const chosen = state.selected;
    const near = chosen ? related(chosen) : { up: new Set(), down: new Set() };
    const friends = new Set(chosen ? partnersOf(chosen) : []);
    document.querySelectorAll("#tg-scene .tg-node").forEach((g) => {
      const id = g.getAttribute("data-node-id");
      const members = blocks.has(id) ? blocks.get(id).members : [id];
      g.classList.toggle("tg-selected", id === chosen);
      g.classList.toggle("tg-related", id !== chosen && members.some((m) => near.up.has(m) || near.down.has(m)));
      g.classList.toggle("tg-partner", members.some((m) => friends.has(m)));
      g.classList.toggle("tg-match", members.some((m) => state.matches.has(m)));
      const check = g.getAttribute("data-check");
      g.classList.toggle("tg-dim", state.failuresOnly && check !== "failed" && g.classList.contains("tg-op") | g.classList.contains("tg-block"));
    });
    document.querySelectorAll("#tg-summary tbody tr").forEach((row) => row.classList.toggle("tg-selected", row.dataset.nodeId === chosen));
  }

  function partnersOf(id) { return partners.get(id) || []; }

  function hover(id) {
    // hovering an op outlines its partners on the other side (drawn when that side shows)
    const friends = new Set(id ? partnersOf(id) : []);
    document.querySelectorAll("#tg-scene .tg-node").forEach((g) => {
      const members = blocks.has(g.dataset.nodeId) ? blocks.get(g.dataset.nodeId).members : [g.dataset.nodeId];
      g.classList.toggle("tg-hover-partner", members.some((m) => friends.has(m)));
    });
    const status = document.getElementById("tg-status");
    status.textContent = id && byId.get(id) && partnersOf(id).length
      ? byId.get(id).op + ": " + partnersOf(id).map((p) => byId.get(p).op).join(", ") + " on the other side" : "";
  }

  // ---------------------------------------------------------------- details
  function select(id) {
    const n = byId.get(id);
    if (!n) return false;
    if (n.side !== state.side) setSide(n.side);
    const block = blockOf.get(id);
    if (block && !blocks.get(block).expanded) expand(block);
    state.selected = id;
    showDetails(n);
    applyClasses();
    return true;
  }

  function row(table, key, value) {
    const tr = document.createElement("tr");
    const k = document.createElement("td");
    k.textContent = key;
    const v = document.createElement("td");
    v.textContent = value;
    tr.append(k, v);
    table.appendChild(tr);
  }

  function number(x) { return x === null || x === undefined ? "\u2013" : Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : (+x.toFixed(4)).toString(); }

  function showDetails(n) {
    const panel = document.getElementById("tg-details");
    panel.textContent = "";
    const title = document.createElement("h3");
    title.textContent = n.kind === "op" ? n.op : (n.name || "tensor") + " (" + n.leaf + ")";
    panel.appendChild(title);
    const table = document.createElement("table");
    panel.appendChild(table);
    if (n.kind === "op") {
      row(table, "op", n.name);
      row(table, "side", n.side);
      row(table, "called at", n.where || "\u2013");
      n.input_shapes.forEach(([shape, dtype], k) => row(table, "input " + k, "(" + shape.join(", ") + ") " + dtype));
      row(table, "output", "(" + n.shape.join(", ") + ") " + n.dtype);
      row(table, "MACs", n.macs.toLocaleString("en"));
      row(table, "saved for backward", n.saved_bytes.toLocaleString("en") + " B");
      if (n.field) row(table, "receptive field", n.field);
      if (n.check) row(table, "gradient check", n.check);
      const friends = partnersOf(n.id);
      if (friends.length) row(table, n.side === "forward" ? "backward nodes" : "backward of", friends.map((f) => byId.get(f).op).join(", "));
      if (n.failure) {
        const failure = document.createElement("div");
        failure.className = "tg-failure";
        failure.textContent = n.failure;
        panel.appendChild(failure);
      }
      const out = byId.get(n.output);
      if (out) tensorParts(panel, out, "output");
    } else {
      tensorParts(panel, n, "values");
      if (n.leaf === "parameter" && n.side === "forward") {
        const button = document.createElement("button");
        button.textContent = "path to the output";
        button.addEventListener("click", () => { state.matches = pathToOutput(n.id); applyClasses(); });
        panel.appendChild(button);
      }
    }
  }

  function tensorParts(panel, n, caption) {
    const table = document.createElement("table");
    const s = n.stats;
    row(table, caption, "(" + n.shape.join(", ") + ") " + n.dtype);
    ["min", "max", "mean", "std"].forEach((k) => row(table, k, number(s[k])));
    row(table, "NaN / Inf", s.nan + " / " + s.inf);
    row(table, "zeros", (100 * s.zeros).toFixed(1) + "%");
    if (n.grad_stats) row(table, "gradient min / max", number(n.grad_stats.min) + " / " + number(n.grad_stats.max));
    panel.appendChild(table);
    if (n.histogram) panel.appendChild(histogramSvg(n.histogram));
    pictures(panel, n.pictures, "heatmaps", "tg-heatmaps");
    pictures(panel, n.grad_pictures, "gradient", "tg-grad-heatmaps");
  }

  function pictures(panel, list, caption, className) {
    if (!list || !list.length) return;
    const box = document.createElement("div");
    box.className = "tg-pictures " + className;
    const title = document.createElement("div");
    title.textContent = caption;
    box.appendChild(title);
    list.forEach((uri) => { const img = document.createElement("img"); img.src = uri; img.alt = caption; box.appendChild(img); });
    panel.appendChild(box);
  }

  function histogramSvg(h) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", 320);
    svg.setAttribute("height", 60);
    svg.setAttribute("class", "tg-histogram");
    const top = Math.max(...h.counts, 1);
    h.counts.forEach((c, k) => element("rect", { x: k * 320 / h.counts.length, y: 60 - 56 * c / top, width: 320 / h.counts.length - 1, height: 56 * c / top, fill: "#2a6ebb" }, svg));
    return svg;
  }

  function pathToOutput(id) {
    const down = related(id).down;
    const outputs = data.nodes.filter((n) => n.kind === "op" && n.side === "forward" && !(consumers.get(n.output) || []).length);
    const up = new Set();
    outputs.forEach((o) => related(o.id).up.forEach((k) => up.add(k)));
    outputs.forEach((o) => up.add(o.id));
    return new Set([id, ...[...down].filter((k) => up.has(k))]);
  }

  // ---------------------------------------------------------------- folding, sides, search
  function expand(id) { if (!blocks.has(id)) return false; blocks.get(id).expanded = true; draw(); return true; }
  function collapse(id) { if (!blocks.has(id)) return false; blocks.get(id).expanded = false; draw(); return true; }

  function setSide(side) {
    state.side = side;
    document.getElementById("tg-forward").classList.toggle("tg-on", side === "forward");
    document.getElementById("tg-backward").classList.toggle("tg-on", side === "backward");
    state.fitted = false;
    draw();
  }

  function search(text) {
    const needle = (text || "").toLowerCase();
    state.matches = new Set(needle ? data.nodes.filter((n) => (n.name || "").toLowerCase().includes(needle) || (n.op || "").toLowerCase().includes(needle)).map((n) => n.id) : []);
    applyClasses();
    return [...state.matches];
  }

  // ---------------------------------------------------------------- pan, zoom, save
  function applyView() {
    const { x, y, scale } = state.view;
    document.getElementById("tg-scene").setAttribute("transform", `translate(${x},${y}) scale(${scale})`);
  }

  function fit() {
    const boxes = [...state.positions.values()];
    const canvas = document.getElementById("tg-canvas").getBoundingClientRect();
    if (!boxes.length) return;
    const left = Math.min(...boxes.map((b) => b.x - b.w / 2));
    const right = Math.max(...boxes.map((b) => b.x + b.w / 2));
    const top = Math.min(...boxes.map((b) => b.y - b.h / 2));
    const bottom = Math.max(...boxes.map((b) => b.y + b.h / 2));
    const scale = Math.min(2, (canvas.width - 20) / (right - left || 1), (canvas.height - 20) / (bottom - top || 1));
    state.view = { scale, x: canvas.width / 2 - scale * (left + right) / 2, y: 10 - scale * top };
    applyView();
  }

  function zoom(factor) { state.view.scale *= factor; applyView(); }

  function download(name, href) { const a = document.createElement("a"); a.download = name; a.href = href; a.click(); }

  function svgText() {
    const clone = document.getElementById("tg-svg").cloneNode(true);
    const style = document.createElementNS(SVG, "style");
    style.textContent = [...document.styleSheets].map((s) => [...s.cssRules].map((r) => r.cssText).join("\n")).join("\n");
    clone.insertBefore(style, clone.firstChild);
    return new XMLSerializer().serializeToString(clone);
  }

  function savePng() {
    const image = new Image();
    const box = document.getElementById("tg-svg").getBoundingClientRect();
    image.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = box.width;
      canvas.height = box.height;
      canvas.getContext("2d").drawImage(image, 0, 0);
      download("graph.png", canvas.toDataURL("image/png"));
    };
    image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(svgText());
  }

  function wire() {
    const on = (id, event, handler) => document.getElementById(id).addEventListener(event, handler);
    on("tg-forward", "click", () => setSide("forward"));
    on("tg-backward", "click", () => setSide("backward"));
    on("tg-fit", "click", fit);
    on("tg-zoom-in", "click", () => zoom(1.25));
    on("tg-zoom-out", "click", () => zoom(0.8));
    on("tg-expand-all", "click", () => { blocks.forEach((b) => { b.expanded = true; }); draw(); });
    on("tg-collapse-all", "click", () => { blocks.forEach((b) => { b.expanded = false; }); draw(); });
    on("tg-failures", "change", (e) => { state.failuresOnly = e.target.checked; applyClasses(); });
    on("tg-search", "input", (e) => search(e.target.value));
    on("tg-save-svg", "click", () => download("graph.svg", "data:image/svg+xml;charset=utf-8," + encodeURIComponent(svgText())));
    on("tg-save-png", "click", savePng);
    if (!data.checked) document.getElementById("tg-failures-label").style.display = "none";
    if (!data.nodes.some((n) => n.side === "backward")) document.getElementById("tg-backward").disabled = true;
    const canvas = document.getElementById("tg-canvas");
    let drag = null;
    canvas.addEventListener("mousedown", (e) => { drag = { x: e.clientX, y: e.clientY, view: { ...state.view } }; });
    window.addEventListener("mouseup", () => { drag = null; });
    window.addEventListener("mousemove", (e) => { if (drag) { state.view.x = drag.view.x + e.clientX - drag.x; state.view.y = drag.view.y + e.clientY - drag.y; applyView(); } });
    canvas.addEventListener("wheel", (e) => { e.preventDefault(); zoom(e.deltaY < 0 ? 1.1 : 0.9); }, { passive: false });
    canvas.addEventListener("click", () => { state.selected = null; state.matches = new Set(); applyClasses(); });
    document.addEventListener("keydown", (e) => {
      if (e.target.tagName === "INPUT") { if (e.key === "Escape") e.target.blur(); return; }
      const keys = { f: fit, "+": () => zoom(1.25), "=": () => zoom(1.25), "-": () => zoom(0.8), b: () => setSide(state.side === "forward" && !document.getElementById("tg-backward").disabled ? "backward" : "forward"), e: () => document.getElementById("tg-expand-all").click(), c: () => document.getElementById("tg-collapse-all").click(), "/": () => { e.preventDefault(); document.getElementById("tg-search").focus(); }, Escape: () => { state.selected = null; state.matches = new Set(); applyClasses(); } };
      if (keys[e.key]) keys[e.key]();
    });
  }

  function summary() {
    const body = document.querySelector("#tg-summary tbody");
    data.summary.forEach((id) => {
      const n = byId.get(id);
      const tr = document.createElement("tr");
      tr.dataset.nodeId = id;
      [n.name, "(" + n.shape.join(", ") + ")", n.macs.toLocaleString("en"), n.saved_bytes.toLocaleString("en"), n.field || ""].forEach((text) => {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      tr.addEventListener("click", () => select(id));
      body.appendChild(tr);
    });
  }

  // ---------------------------------------------------------------- the testing interface
  window.tgViewer = {
    ready: false,
    nodes: () => data.nodes.map((n) => ({ id: n.id, kind: n.kind, op: n.op, name: n.name, shape: n.shape, side: n.side, check: n.check })),
    visible: () => state.units.map((u) => u.id),
    select,
    blocks: () => [...blocks.values()].map((b) => ({ id: b.id, label: b.label, repeats: b.repeats, expanded: b.expanded })),
    expand,
    collapse,
    search,
    partners: partnersOf,
  };
  wire();
  summary();
  draw();
  window.tgViewer.ready = true;
})();
