// DANet's channel map X (C x C) in the page (attnviz.app.channel_canvas; payload: attnviz.analysis.hover.channel_payload).
//
// X is drawn once as an image; a pointer move over it (or over the row chart) picks row c: the row is
// drawn as bars, its largest entries listed, and X[c, j] = exp(a_cj - L_c) written with this photo's
// numbers (a: the softmax argument of the model's form, L: the row's log-normaliser). Nothing goes to
// the server while hovering; a click pins row c (one trigger value).
//
// The contract with a host (as attention_canvas.js's): the default export takes {data, parentElement,
// setTriggerValue, setStateValue} and is called again whenever the host's data change.
// - data.local_pins false or absent (the Streamlit app): a click calls setTriggerValue("channel", c) and nothing
//   else; the host chooses the row and calls again with data.channel.
// - data.local_pins true: a click also chooses row c in the page itself (the row shown while the pointer is away,
//   marked on X) and calls setStateValue("channel", c) when the host gave one. A later call's data.channel, when
//   given, replaces the page's choice; left out, the page keeps its own.
// - data.pin_state false: no setStateValue (the Streamlit app: its trigger already reruns the row's numbers).
// The chosen row is written to the root element's data-chosen, each drawn row to the readout's data-view.

const INSTANCES = new WeakMap();
const TOP_K = 5;
function prepare(data) {
  const p = { ...data, x: decode(data.x, Float32Array) };
  if (data.argument) { p.argument = decode(data.argument, Float64Array); p.lse = decode(data.lse, Float64Array); }
  let hi = -Infinity, lo = Infinity;
  for (const v of p.x) { if (v > hi) hi = v; if (v < lo) lo = v; }
  p.hi = hi; p.lo = lo;
  return p;
}

// X in the channel colour map of attnviz.viz.colours (data.colours: its 256-entry RGB table), on X's own range
function drawMatrix(state) {
  const p = state.payload, C = p.channels, canvas = state.matrix, ctx = canvas.getContext("2d");
  canvas.width = C; canvas.height = C;
  const image = ctx.createImageData(C, C), span = p.hi > p.lo ? p.hi - p.lo : 1, lut = state.colours;
  for (let i = 0; i < C * C; i++) {
    const entry = Math.round(Math.min(Math.max((p.x[i] - p.lo) / span, 0), 1) * 255) * 3;
    image.data.set([lut[entry], lut[entry + 1], lut[entry + 2], 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
  state.matrixImage = image;
}

function fill(labels, name, values) {
  return labels[name].replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}

function fmt(v, digits = 4) {
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : v.toFixed(digits);
}

function render(state, c, source) {
  const start = performance.now();
  const p = state.payload, C = p.channels;
  const row = p.x.subarray(c * C, (c + 1) * C);
  const ctx = state.matrix.getContext("2d");
  ctx.putImageData(state.matrixImage, 0, 0);
  ctx.strokeStyle = "#ff2b2b"; ctx.lineWidth = Math.max(0.6, C / 256);
  ctx.strokeRect(0, c, C, 1);
  // the row as bars
  const bars = state.bars, bctx = bars.getContext("2d");
  const w = bars.width, h = bars.height;
  bctx.clearRect(0, 0, w, h);
  let rowHigh = 0;
  for (const v of row) rowHigh = Math.max(rowHigh, v);
  const top = topIndices(row, TOP_K);
  const barWidth = w / C;
  for (let j = 0; j < C; j++) {
    const height = rowHigh > 0 ? (row[j] / rowHigh) * (h - 14) : 0;
    bctx.fillStyle = top.includes(j) ? "#ff4b4b" : "#7f8ea3";
    bctx.fillRect(j * barWidth, h - height, Math.max(barWidth - 0.5, 0.5), height);
  }
  bctx.fillStyle = getComputedStyle(state.root).color || "#333";
  bctx.font = "11px sans-serif";
  bctx.fillText(fill(state.labels, "bars_title", { c, max: fmt(rowHigh) }), 4, 11);
  // the readout
  let sum = 0;
  for (const v of row) sum += v;
  const j = top[0];
  const lines = [fill(state.labels, "row", { c, sum: sum.toFixed(6), uniform: (1 / C).toFixed(4) })];
  if (p.argument) {
    const a = p.argument[c * C + j], L = p.lse[c];
    const term = p.form === "official" ? `max_m(A_${c}·A_m) − A_${c}·A_${j}` : `A_${c}·A_${j}`;
    lines.push(fill(state.labels, "entry", { c, j, term, a: a.toFixed(1), L: L.toFixed(1), value: fmt(row[j]) }));
    lines.push(fill(state.labels, "similar", { c, most: p.most_similar[c], least: p.least_similar[c] }));
  }
  state.head.innerHTML = "";
  for (const line of lines) { const d = document.createElement("div"); d.textContent = line; state.head.appendChild(d); }
  state.list.innerHTML = "";
  for (const t of top) { const li = document.createElement("li"); li.textContent = fill(state.labels, "top_item", { channel: t, value: fmt(row[t]) }); state.list.appendChild(li); }
  state.readout.dataset.view = JSON.stringify({ channel: c, row: Array.from(row), top, sum });
  const elapsed = performance.now() - start;
  state.root.dataset.draws = String(+(state.root.dataset.draws || 0) + 1);
  state.root.dataset.drawMs = elapsed.toFixed(3);
  state.root.dataset.source = source;
  state.root.dataset.channel = String(c);
}

function channelAt(state, event, element, vertical) {
  const box = element.getBoundingClientRect();
  const C = state.payload.channels;
  const along = vertical ? (event.clientY - box.top) / box.height : (event.clientX - box.left) / box.width;
  return Math.min(Math.max(Math.floor(along * C), 0), C - 1);
}

function choose(state, c) {
  state.channel = c;
  state.root.dataset.chosen = String(c);
}

function setup(parentElement) {
  const root = parentElement.querySelector(".attnviz-channels");
  root.innerHTML = `
    <div class="matrix-box"><div class="axis-y"></div><canvas class="matrix"></canvas>
      <div class="axis-x"></div></div>
    <div class="side"><canvas class="bars" width="520" height="150"></canvas>
      <div class="readout"><div class="readout-head"></div><div class="readout-top-title"></div><ol class="readout-top"></ol></div></div>`;
  const state = { root, matrix: root.querySelector(".matrix"), bars: root.querySelector(".bars"),
                  readout: root.querySelector(".readout"), head: root.querySelector(".readout-head"),
                  list: root.querySelector(".readout-top"), hovering: false };
  const move = (event) => {
    const target = event.target === state.matrix ? state.matrix : null;
    if (!target) return;
    state.latest = channelAt(state, event, target, true);
    state.hovering = true;
    render(state, state.latest, "hover");  // pointer moves come once per frame: draw in this one
  };
  state.matrix.addEventListener("pointermove", move);
  state.matrix.addEventListener("pointerleave", () => { state.hovering = false; render(state, state.channel, "server"); });
  state.matrix.addEventListener("click", (event) => {
    const c = channelAt(state, event, state.matrix, true);
    // the host first (its numbers start while the page draws), then the row drawn here
    state.setTriggerValue("channel", c);
    if (state.localChoice && state.setStateValue) state.setStateValue("channel", c);
    if (state.localChoice) state.root.dataset.chosen = String(c);
    setTimeout(() => {
      if (state.localChoice) choose(state, c);
      render(state, c, "pin");
    }, 0);
  });
  return state;
}

export default function (component) {
  const { data, parentElement, setTriggerValue, setStateValue } = component;
  let state = INSTANCES.get(parentElement);
  if (!state) { state = setup(parentElement); INSTANCES.set(parentElement, state); }
  state.setTriggerValue = setTriggerValue;
  state.setStateValue = data.pin_state === false ? null : setStateValue;
  state.localChoice = Boolean(data.local_pins);
  if (!state.localChoice || data.channel !== undefined || state.channel === undefined) choose(state, data.channel);
  state.labels = data.labels;   // the page's language (attnviz/locales, section [channel_canvas])
  state.root.querySelector(".axis-y").textContent = data.labels.axis_y;
  state.root.querySelector(".axis-x").textContent = data.labels.axis_x;
  state.root.querySelector(".readout-top-title").textContent = data.labels.top_title;
  if (state.version !== data.version) {
    state.version = data.version;
    state.payload = prepare(data.payload);
    state.colours = decode(data.colours, Uint8Array);
    drawMatrix(state);
  }
  state.root.dataset.ready = "1";
  render(state, state.hovering && state.latest !== undefined ? state.latest : state.channel, "server");
}
