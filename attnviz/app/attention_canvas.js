// Attention under the cursor, computed in the page (attnviz.app.attention_canvas; payload: attnviz.analysis.hover).
//
// A row of S is softmax(q_i . K), normalised by its own log-sum-exp (a column uses the recorded L_i);
// q_i . K / N_k (dot form); only the H + W - 1 keys of the query's cross (criss-cross); or one shared map (GCNet).
// Every pointer move computes the hovered cell's row (or column) for each panel and draws it over the photo: no
// message goes to the server.
// A click (a tap on a phone) pins the point: one trigger value, which the server answers with its numbers.
//
// The contract with a host (Streamlit's components v2, the notebook widget, the standalone HTML file of
// attnviz.viz.standalone): the default export takes {data, parentElement, setTriggerValue, setStateValue} and is
// called again with new data whenever the host's settings change (data.version unchanged: the panels are kept).
// - data.local_pins false or absent (the Streamlit app): a click calls setTriggerValue("pin", {x, y}) and
//   nothing else; the host adds the pin and calls again with data.pins and data.pixel.
// - data.local_pins true: a click adds the pin in the page itself, by the server's rule
//   (attnviz.analysis.views.with_pin: the point becomes the newest pin, an equal older one is dropped, at most
//   data.max_pins, the oldest replaced) and redraws at once; the point shown while the pointer is away is the
//   newest pin (data.pixel until there is one). It still calls setTriggerValue("pin", {x, y, pins}) (pins: the
//   page's pins after the click, oldest first, so that a host that missed a trigger still ends with them), then
//   setStateValue("pins", [[x, y], ...]) (oldest first) when the host gave one. A later call's data.pins, when
//   given, replaces the page's pins; left out, the page keeps its own.
// - data.pin_state false: no setStateValue (the Streamlit app, whose trigger already reruns the part of the page
//   that shows the pins' numbers; a state value would rerun it twice).
// - data.payload_version instead of data.photo and data.panels: the payload comes apart, from canvas_payload.js
//   (the Streamlit app: the page's registry by version); the canvas draws once it is there.
// The pins are also written to the root element's data-pins (JSON), and each drawn view to its readout's
// data-view, for tests and hosts.

const INSTANCES = new WeakMap();
const TOP_K = 5;


// ------------------------------------------------------------------------------------------ the maths

function prepare(payload) {
  const p = { ...payload, qg: payload.query_grid, kg: payload.key_grid };
  p.numQueries = p.qg.rows * p.qg.cols;
  p.numKeys = p.kg.rows * p.kg.cols;
  p.subsampled = p.kg.rows !== p.qg.rows || p.kg.cols !== p.qg.cols;
  if (p.form === "shared") {
    p.map = decode(payload.map, Float32Array);
  } else {
    p.q = decode(payload.query, Float32Array);
    p.k = decode(payload.key, Float32Array);
    p.lse = decode(payload.lse, Float32Array);
    // a transformer's tokens in front of the patches (CLS, DIST, registers): keys of every row, not drawn
    p.pk = payload.prefix_key ? decode(payload.prefix_key, Float32Array) : null;
    p.numPrefix = p.pk ? p.pk.length / payload.channels : 0;
  }
  return p;
}

function dot(a, ia, b, ib, c) {
  let s = 0;
  const oa = ia * c, ob = ib * c;
  for (let d = 0; d < c; d++) s += a[oa + d] * b[ob + d];
  return s;
}

// an entry of a column: normalised by its row's log-sum-exp as the forward pass recorded it
function weight(p, energy, query) {
  return p.form === "dot" ? energy / p.numKeys : Math.exp(energy - p.lse[query]);
}

// a row from its energies (indices `keys` of `energies`), normalised by its own log-sum-exp, so that it is a
// distribution whatever order the forward pass summed in (attnviz.capture.records.PositionAttentionRecord)
function softmaxInPlace(energies, keys) {
  let peak = -Infinity;
  for (const j of keys) if (energies[j] > peak) peak = energies[j];
  let total = 0;
  for (const j of keys) {
    energies[j] = Math.exp(energies[j] - peak);
    total += energies[j];
  }
  for (const j of keys) energies[j] /= total;
  return energies;
}

// the same over every entry, with index loops (no list of keys: this runs on every pointer move); `extra`: the
// energies of keys that share the row but are not drawn (a transformer's prefix tokens), so the drawn entries
// sum to 1 minus their share, as in attnviz.capture.records.TokenAttentionRecord.row
function softmaxDense(energies, extra = []) {
  const n = energies.length;
  let peak = -Infinity;
  for (let j = 0; j < n; j++) if (energies[j] > peak) peak = energies[j];
  for (const e of extra) if (e > peak) peak = e;
  let total = 0;
  for (const e of extra) total += Math.exp(e - peak);
  for (let j = 0; j < n; j++) {
    const e = Math.exp(energies[j] - peak);
    energies[j] = e;
    total += e;
  }
  for (let j = 0; j < n; j++) energies[j] /= total;
  return energies;
}

function range(n) {
  return Array.from({ length: n }, (_, i) => i);
}

// row i (on the key grid) or column j (on the query grid) of S, as a Float64Array
function attention(p, mode, index) {
  const c = p.channels;
  if (p.form === "shared") {
    if (mode === "row") return Float64Array.from(p.map);
    return new Float64Array(p.numQueries).fill(p.map[index]);
  }
  if (p.form === "cross") {
    const W = p.qg.cols, H = p.qg.rows, out = new Float64Array(p.numQueries);
    const h = Math.floor(index / W), w = index % W;
    const cross = [...range(H).map((r) => r * W + w), ...range(W).filter((col) => col !== w).map((col) => h * W + col)];
    if (mode === "row") {
      for (const j of cross) out[j] = dot(p.q, index, p.k, j, c);
      return softmaxInPlace(out, cross);  // the H + W - 1 keys of the cross, the pixel itself once
    }
    for (const j of cross) out[j] = weight(p, dot(p.q, j, p.k, index, c), j);
    return out;
  }
  if (mode === "row") {
    const out = new Float64Array(p.numKeys);
    for (let j = 0; j < p.numKeys; j++) out[j] = dot(p.q, index, p.k, j, c);
    if (p.form === "dot") return out.map((energy) => energy / p.numKeys);
    const prefix = range(p.numPrefix).map((t) => dot(p.q, index, p.pk, t, c));
    return softmaxDense(out, prefix);
  }
  const out = new Float64Array(p.numQueries);
  for (let i = 0; i < p.numQueries; i++) out[i] = weight(p, dot(p.q, i, p.k, index, c), i);
  return out;
}

function extent(values) {
  let lo = Infinity, hi = -Infinity, sum = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
    sum += v;
  }
  return { lo, hi, sum };
}

// --------------------------------------------------------------------------------------- the drawing

function cellOfPixel(grid, x, y) {
  const row = grid.row_of_y[y], col = grid.col_of_x[x];
  return { row, col, index: row * grid.cols + col };
}

function paintOverlay(panel, values, grid, lo, hi, opacity) {
  paintMap(panel, panel.overlay, values, grid, lo, hi, opacity, true);
}

// the map (on `grid`) blended over `canvas`, upsampled smoothly; `clear`: start from a transparent canvas.
// The colour map and this rule are attnviz.viz.colours's (data.colours: its 256-entry RGB table), which the
// overlay PNGs (attnviz.viz.overlays.blend_heatmap) follow too
function paintMap(panel, canvas, values, grid, lo, hi, opacity, clear) {
  const small = panel.small;
  if (small.width !== grid.cols || small.height !== grid.rows) {
    small.width = grid.cols;
    small.height = grid.rows;
    panel.smallImage = panel.smallContext.createImageData(grid.cols, grid.rows);
  }
  const pixels = panel.smallImage.data, span = hi > lo ? hi - lo : 1, lut = panel.colours;
  for (let i = 0; i < values.length; i++) {
    const t = Math.min(Math.max((values[i] - lo) / span, 0), 1) || 0;  // NaN -> 0
    const entry = Math.round(t * 255) * 3, o = i * 4;
    pixels[o] = lut[entry];
    pixels[o + 1] = lut[entry + 1];
    pixels[o + 2] = lut[entry + 2];
    pixels[o + 3] = Math.round(255 * opacity * t);  // colour only where attention is high
  }
  panel.smallContext.putImageData(panel.smallImage, 0, 0);
  const ctx = canvas.getContext("2d");
  if (clear) ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = true;  // smooth (bilinear) upsampling of the cells to the photo
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
}

function circle(ctx, x, y, radius, colour, width) {
  ctx.beginPath();
  ctx.arc(x + 0.5, y + 0.5, radius, 0, 2 * Math.PI);
  ctx.lineWidth = width + 2;
  ctx.strokeStyle = "rgba(0,0,0,0.85)";
  ctx.stroke();
  ctx.lineWidth = width;
  ctx.strokeStyle = colour;
  ctx.stroke();
}

function cross(ctx, x, y, size, colour) {
  for (const [lineWidth, style] of [[5, "rgba(0,0,0,0.85)"], [2, colour]]) {
    ctx.beginPath();
    ctx.moveTo(x - size, y + 0.5); ctx.lineTo(x + size, y + 0.5);
    ctx.moveTo(x + 0.5, y - size); ctx.lineTo(x + 0.5, y + size);
    ctx.lineWidth = lineWidth;
    ctx.strokeStyle = style;
    ctx.stroke();
  }
}

function drawMarkers(panel, top, grid, pointerCell, pointerGrid, pins, scale) {
  const ctx = panel.overlayContext;
  const radius = Math.max(4, 7 * scale);
  for (const t of top) {
    const row = Math.floor(t / grid.cols), col = t % grid.cols;
    circle(ctx, grid.centre_x[col], grid.centre_y[row], radius, "#00ffff", Math.max(1.5, 2 * scale));
  }
  pins.forEach(([x, y], n) => {
    circle(ctx, x, y, radius * 1.3, "#ffffff", Math.max(1.5, 2 * scale));
    ctx.font = `bold ${Math.round(13 * scale)}px sans-serif`;
    ctx.fillStyle = "#ffffff";
    ctx.strokeStyle = "#000000";
    ctx.lineWidth = 3;
    ctx.strokeText(String(n + 1), x + radius * 1.5, y - radius * 1.2);
    ctx.fillText(String(n + 1), x + radius * 1.5, y - radius * 1.2);
  });
  const centreX = pointerGrid.centre_x[pointerCell.col], centreY = pointerGrid.centre_y[pointerCell.row];
  cross(ctx, centreX, centreY, radius * 1.6, "#00ff00");
}

function paintColourBar(panel, lo, hi, opacity) {
  const bar = panel.bar, ctx = panel.barContext, lut = panel.colours;
  const h = bar.height, w = bar.width;
  ctx.clearRect(0, 0, w, h);
  const image = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    const t = 1 - y / (h - 1), entry = Math.round(t * 255) * 3;
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 4;
      image.data[o] = lut[entry]; image.data[o + 1] = lut[entry + 1]; image.data[o + 2] = lut[entry + 2];
      image.data[o + 3] = Math.round(255 * Math.max(opacity * t, 0.15));
    }
  }
  ctx.putImageData(image, 0, 0);
  panel.barHigh.textContent = formatValue(hi);
  panel.barLow.textContent = formatValue(lo);
}

function formatValue(v) {
  if (!Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toFixed(4);
}

// --------------------------------------------------------------------------------------- the readout

// the readout's texts come from the page's catalog (attnviz/locales, section [canvas], sent in data.labels);
// {name} is filled here
function fill(labels, name, values) {
  return labels[name].replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}

function readoutText(panel, view, labels) {
  const { x, y, cell, grid, values, top, stats, mode } = view;
  const p = panel.payload;
  const n = grid.rows * grid.cols;
  const lines = [];
  const gridText = fill(labels, mode === "column" && p.subsampled ? "key_grid" : "grid", { rows: grid.rows, cols: grid.cols });
  lines.push(fill(labels, "pixel", { x, y, row: cell.row, col: cell.col, index: cell.index, n, grid: gridText }));
  if (mode === "row") {
    lines.push(p.form === "dot" ? fill(labels, "row_sum_dot", { sum: stats.sum.toFixed(4) })
      : fill(labels, "row_sum", { sum: stats.sum.toFixed(6), high: stats.hi.toFixed(4),
                                  ratio: (stats.hi * p.baseline).toFixed(1), baseline: p.baseline }));
  } else {
    const average = p.numQueries / p.numKeys;
    lines.push(fill(labels, "column_sum", { sum: stats.sum.toFixed(3), average: +average.toFixed(4),
                                            ratio: (stats.sum / average).toFixed(2) }));
  }
  const width = mode === "row" ? p.kg.cols : p.qg.cols;
  const list = top.map((t) => fill(labels, "top_item", { row: Math.floor(t / width), col: t % width,
                                                         value: values[t].toFixed(4) }));
  return { head: lines, list };
}

// ------------------------------------------------------------------------------------------- a panel

function makePanel(root, index) {
  const panel = { element: document.createElement("div") };
  panel.element.className = "panel";
  panel.element.innerHTML = `
    <div class="panel-title"></div>
    <div class="photo-row">
      <div class="stack"><img class="photo" alt="photo" draggable="false"><canvas class="overlay"></canvas></div>
      <div class="bar-box"><span class="bar-high"></span><canvas class="bar" width="12" height="200"></canvas><span class="bar-low"></span></div>
    </div>
    <div class="pins"></div>
    <div class="readout" data-panel="${index}"><div class="readout-head"></div><div class="readout-top-title">Top locations:</div><ol class="readout-top"></ol></div>`;
  root.appendChild(panel.element);
  for (const [name, selector] of [["title", ".panel-title"], ["stack", ".stack"], ["photo", ".photo"],
    ["overlay", ".overlay"], ["bar", ".bar"], ["barHigh", ".bar-high"], ["barLow", ".bar-low"],
    ["readout", ".readout"], ["readoutHead", ".readout-head"], ["readoutTop", ".readout-top"],
    ["pinsBox", ".pins"]]) {
    panel[name] = panel.element.querySelector(selector);
  }
  panel.overlayContext = panel.overlay.getContext("2d");
  panel.barContext = panel.bar.getContext("2d");
  panel.small = document.createElement("canvas");
  panel.smallContext = panel.small.getContext("2d");
  return panel;
}

// --------------------------------------------------------------------------------------- pinned maps

// Each pin's map for each panel, computed once per data update (like the paper's Fig. 4: the photo with
// the pin's row of S over it and the pin marked); their ranges join the shared colour scale.
function computePins(state) {
  state.pinMaps = state.panels.map((panel) => state.pins.map(([x0, y0]) => {
    const p = panel.payload;
    const [x, y] = panelPixel(state, panel, x0, y0);
    const grid = state.mode === "row" ? p.qg : p.kg, valuesGrid = state.mode === "row" ? p.kg : p.qg;
    const cell = cellOfPixel(grid, x, y);
    const values = attention(p, state.mode, cell.index);
    return { x, y, cell, grid, valuesGrid, values, stats: extent(values) };
  }));
}

function drawAllPins(state) {
  let high = -Infinity, low = Infinity;
  for (const maps of state.pinMaps) for (const m of maps) { high = Math.max(high, m.stats.hi); low = Math.min(low, m.stats.lo); }
  drawPins(state, Math.min(low, 0), high);
}

function drawPins(state, sharedLow, sharedHigh) {
  state.panels.forEach((panel, k) => {
    const maps = state.pinMaps[k] || [];
    const box = panel.pinsBox;
    box.innerHTML = "";
    box.hidden = maps.length < 2 && state.panels.length < 2;
    if (box.hidden || !panel.photo.complete || !panel.photo.naturalWidth) return;
    const [height, width] = panel.imageHW;
    maps.forEach((m, n) => {
      const figure = document.createElement("figure");
      figure.className = "pin-map";
      const canvas = document.createElement("canvas");
      canvas.width = width; canvas.height = height;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(panel.photo, 0, 0, width, height);
      const lo = state.scale === "shared" ? sharedLow : m.stats.lo, hi = state.scale === "shared" ? sharedHigh : m.stats.hi;
      paintMap(panel, canvas, m.values, m.valuesGrid, lo, hi, state.opacity, false);
      const scale = Math.max(width, height) / 480;
      cross(ctx, m.grid.centre_x[m.cell.col], m.grid.centre_y[m.cell.row], Math.max(6, 11 * scale), "#00ff00");
      const caption = document.createElement("figcaption");
      caption.textContent = `${n + 1}. x ${m.x}, y ${m.y}` + (state.scale === "shared" ? "" : ` · max ${formatValue(m.stats.hi)}`);
      figure.append(canvas, caption);
      box.appendChild(figure);
    });
  });
}

// ------------------------------------------------------------------------------------------ instance

function pointerPixel(state, event, stack) {
  const box = stack.getBoundingClientRect();
  const [height, width] = state.imageHW;
  if (box.width <= 0 || box.height <= 0) return null;
  // the click -> pixel rule of attnviz.analysis.geometry.click_to_pixel: scale, floor, clip
  const x = Math.min(Math.max(Math.floor((event.clientX - box.left) * width / box.width), 0), width - 1);
  const y = Math.min(Math.max(Math.floor((event.clientY - box.top) * height / box.height), 0), height - 1);
  return [x, y];
}

// (x, y) of the first panel's photo -> the same place on a panel's own photo: attnviz.analysis.geometry.same_place
// (x * w // W, y * h // H; the same pixel when the sizes agree)
function panelPixel(state, panel, x, y) {
  const [height, width] = state.imageHW, [h, w] = panel.imageHW;
  return [Math.floor(x * w / width), Math.floor(y * h / height)];
}

function render(state, x0, y0, source) {
  const start = performance.now();
  const views = state.panels.map((panel) => {
    const p = panel.payload;
    const [x, y] = panelPixel(state, panel, x0, y0);
    const grid = state.mode === "row" ? p.qg : p.kg;       // the hovered pixel: a query (row) or a key (column)
    const valuesGrid = state.mode === "row" ? p.kg : p.qg;
    const cell = cellOfPixel(grid, x, y);
    const values = attention(p, state.mode, cell.index);
    return { panel, x, y, cell, grid, valuesGrid, values, top: topIndices(values, TOP_K), stats: extent(values),
             mode: state.mode };
  });
  let sharedHigh = -Infinity, sharedLow = Infinity;
  for (const v of views) { sharedHigh = Math.max(sharedHigh, v.stats.hi); sharedLow = Math.min(sharedLow, v.stats.lo); }
  for (const maps of state.pinMaps || []) {
    for (const m of maps) { sharedHigh = Math.max(sharedHigh, m.stats.hi); sharedLow = Math.min(sharedLow, m.stats.lo); }
  }
  for (const v of views) {
    const lo = state.scale === "shared" ? Math.min(sharedLow, 0) : v.stats.lo;
    const hi = state.scale === "shared" ? sharedHigh : v.stats.hi;
    const panel = v.panel;
    const [height, width] = panel.imageHW;
    if (panel.overlay.width !== width || panel.overlay.height !== height) {
      panel.overlay.width = width;
      panel.overlay.height = height;
    }
    paintOverlay(panel, v.values, v.valuesGrid, lo, hi, state.opacity);
    const pins = state.pins.map(([px, py]) => panelPixel(state, panel, px, py));
    drawMarkers(panel, v.top, v.valuesGrid, v.cell, v.grid, pins, Math.max(width, height) / 480);
    paintColourBar(panel, lo, hi, state.opacity);
    const text = readoutText(panel, v, state.labels);
    panel.readoutHead.innerHTML = "";
    for (const line of text.head) {
      const div = document.createElement("div");
      div.textContent = line;
      panel.readoutHead.appendChild(div);
    }
    panel.readoutTop.innerHTML = "";
    for (const line of text.list) {
      const li = document.createElement("li");
      li.textContent = line;
      panel.readoutTop.appendChild(li);
    }
    const width_ = v.valuesGrid.cols;
    const exact = { x: v.x, y: v.y, row: v.cell.row, col: v.cell.col, index: v.cell.index, mode: v.mode, total: v.stats.sum,
                    top: v.top.map((t) => [Math.floor(t / width_), t % width_, v.values[t]]) };
    panel.readout.dataset.view = JSON.stringify(exact);
  }
  const elapsed = performance.now() - start;
  const root = state.root;
  root.dataset.draws = String(+(root.dataset.draws || 0) + 1);
  root.dataset.drawMs = elapsed.toFixed(3);
  root.dataset.source = source;
  root.dataset.pixel = `${x0},${y0}`;
  state.drawTimes.push(elapsed);
  if (state.drawTimes.length > 1000) state.drawTimes.shift();
  root.dataset.drawTimes = state.drawTimes.slice(-200).map((t) => t.toFixed(3)).join(" ");
}

// the pins after a click on `pixel`: attnviz.analysis.views.with_pin, the rule the server follows
function withPin(pins, pixel, most) {
  const others = pins.filter(([x, y]) => x !== pixel[0] || y !== pixel[1]);
  return [...others, [pixel[0], pixel[1]]].slice(-most);
}

// every pin's map computed and drawn, and the pins written to the root for tests and hosts
function showPins(state) {
  computePins(state);
  drawAllPins(state);
  state.root.dataset.pins = JSON.stringify(state.pins);
}

function setup(parentElement) {
  const root = parentElement.querySelector(".attnviz-canvas");
  const state = { root, panels: [], version: null, drawTimes: [], hovering: false };
  const onMove = (event) => {
    const stack = event.target.closest && event.target.closest(".stack");
    if (!stack) return;
    const pixel = pointerPixel(state, event, stack);
    if (!pixel) return;
    state.hovering = true;
    state.latest = pixel;
    // Chromium already delivers pointer moves once per frame: draw now, in this frame (a draw deferred to
    // requestAnimationFrame showed a frame later)
    render(state, ...pixel, "hover");
  };
  const onLeave = () => {
    state.hovering = false;
    render(state, ...state.pixel, "server");
  };
  // a click pins the pixel where the press began: a pointer event's coordinates are fractional as the hover's
  // are, a click's whole CSS pixels (the pin could otherwise be a pixel off the one the readout showed)
  const onDown = (event) => {
    const stack = event.target.closest && event.target.closest(".stack");
    state.pressed = stack ? pointerPixel(state, event, stack) : null;
  };
  const onClick = (event) => {
    const stack = event.target.closest && event.target.closest(".stack");
    if (!stack) return;
    const pixel = state.pressed || pointerPixel(state, event, stack);
    state.pressed = null;
    if (!pixel) return;
    // the host first (the server's numbers start while the page draws), then the pin drawn here
    if (state.localPins) {
      state.pins = withPin(state.pins, pixel, state.maxPins);
      state.pixel = pixel;
    }
    const trigger = { x: pixel[0], y: pixel[1] };
    if (state.localPins) trigger.pins = state.pins.map((p) => [...p]);
    state.setTriggerValue("pin", trigger);
    if (state.localPins && state.setStateValue) state.setStateValue("pins", state.pins.map((p) => [...p]));
    if (state.localPins) state.root.dataset.pins = JSON.stringify(state.pins);
    setTimeout(() => {  // after the host has sent the trigger (it may send from a task of its own)
      if (state.localPins) showPins(state);
      render(state, ...pixel, "pin");
    }, 0);
  };
  root.addEventListener("pointermove", onMove);
  root.addEventListener("pointerleave", onLeave);
  root.addEventListener("pointerdown", onDown);
  root.addEventListener("click", onClick);
  state.cleanup = () => {
    root.removeEventListener("pointerdown", onDown);
    root.removeEventListener("pointermove", onMove);
    root.removeEventListener("pointerleave", onLeave);
    root.removeEventListener("click", onClick);
  };
  return state;
}

// the payload sent apart (canvas_payload.js), or null until it is there
function payloadOf(version) {
  return canvasRegistry().byVersion.get(version) || null;
}

// draw `component` once the payload of data.payload_version is in the page's registry
function whenPayloadArrives(component) {
  const registry = canvasRegistry();
  const version = component.data.payload_version;
  const listener = (arrived) => {
    if (arrived !== version) return;
    registry.listeners.delete(listener);
    if (PENDING.get(component.parentElement) === component) draw(component);
  };
  PENDING.set(component.parentElement, component);
  registry.listeners.add(listener);
}

// the canvas's style, when it came with the payload: into the canvas's own root (its shadow root in Streamlit)
function adoptStyle(parentElement, css) {
  if (!css || parentElement.querySelector("style[data-attnviz-canvas]")) return;
  const style = document.createElement("style");
  style.dataset.attnvizCanvas = "1";
  style.textContent = css;
  parentElement.prepend(style);
}

const PENDING = new WeakMap();  // parent element -> the latest call still waiting for its payload

function attentionCanvas(component) {
  PENDING.delete(component.parentElement);
  const version = component.data.payload_version;
  if (version !== undefined && !payloadOf(version)) {
    whenPayloadArrives(component);
    return () => {};
  }
  return draw(component);
}

function draw(component) {
  PENDING.delete(component.parentElement);
  const { parentElement, setTriggerValue, setStateValue } = component;
  let data = component.data;
  if (data.payload_version !== undefined) {
    const payload = payloadOf(data.payload_version);
    data = { ...data, version: payload.version, photo: payload.photo, panels: payload.panels,
             labels: payload.labels, colours: payload.colours };
    adoptStyle(parentElement, payload.css);
  }
  let state = INSTANCES.get(parentElement);
  if (!state) {
    state = setup(parentElement);
    INSTANCES.set(parentElement, state);
  }
  state.setTriggerValue = setTriggerValue;
  state.setStateValue = data.pin_state === false ? null : setStateValue;
  state.localPins = Boolean(data.local_pins);
  state.maxPins = data.max_pins;
  state.mode = data.mode;
  state.opacity = data.opacity;
  state.scale = data.scale;
  if (!state.localPins || data.pins !== undefined || !state.pins) state.pins = data.pins || [];
  // the point shown while the pointer is away: the host's, or in the page's own pinning its newest pin
  state.pixel = state.localPins && state.pins.length ? state.pins[state.pins.length - 1] : data.pixel;
  state.imageHW = data.image_hw;
  state.labels = data.labels;
  if (state.version !== data.version) {
    state.version = data.version;
    state.root.innerHTML = "";
    state.panels = data.panels.map((payload, i) => {
      const panel = makePanel(state.root, i);
      panel.payload = prepare(payload);
      panel.colours = decode(data.colours, Uint8Array);
      panel.title.textContent = payload.title || "";
      panel.photo.src = payload.photo || data.photo;  // a panel may show a photo of its own
      panel.imageHW = payload.image_hw || data.image_hw;
      panel.element.querySelector(".readout-top-title").textContent = fill(data.labels, "top_title", {});
      return panel;
    });
    state.root.classList.toggle("several", state.panels.length > 1);
  }
  state.root.dataset.ready = "1";
  showPins(state);
  for (const panel of state.panels) panel.photo.onload = () => drawAllPins(state);
  // new data (a pin, a setting): redraw where the pointer is, else at the server's pixel
  if (state.hovering && state.latest) render(state, ...state.latest, "hover");
  else render(state, ...state.pixel, "server");
  return () => {};
}

export default attentionCanvas;
