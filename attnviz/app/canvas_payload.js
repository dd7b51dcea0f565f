// The live photo's payload, sent apart from the canvas (attnviz.app.attention_canvas): the photo and each
// panel's Q, K and L. Its data changes only with the model, photo, module or panels shown, so that Streamlit
// sends it again as a reference to the message the browser already holds (its forward-message cache), while
// the canvas's own data (pins, pixel, mode, scale, opacity) stays a few hundred bytes.
//
// It draws nothing: it puts its data in the page's registry by data.version and tells the canvases waiting
// for it (attention_canvas.js reads the registry). Its script is also the canvas's drawing script
// (attention_canvas.js, prepended to this by attnviz.app.attention_canvas): it hands that to the registry,
// where the canvas's stub (canvas_stub.js) finds it, and draws the canvases that came first.

const KEPT = 6;  // the last few payloads are kept (a page shows at most one; the others are cheap to keep)

export default function ({ data }) {
  const registry = canvasRegistry();
  if (!registry.canvas) {
    registry.canvas = attentionCanvas;
    for (const component of registry.queued.values()) attentionCanvas(component);
    registry.queued.clear();
  }
  if (!registry.byVersion.has(data.version)) {
    registry.byVersion.set(data.version, data);
    while (registry.byVersion.size > KEPT) registry.byVersion.delete(registry.byVersion.keys().next().value);
  }
  for (const listener of [...registry.listeners]) listener(data.version);
  return () => {};
}
