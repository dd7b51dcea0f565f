// The page's registry of the live photo's parts sent apart (attnviz.app.attention_canvas): payloads by
// version, the canvases waiting for one, and the canvas's drawing function once its script has come.
// Prepended to the canvas's stub, to the payload element's script and to attention_canvas.js (whichever
// runs first makes it).

function canvasRegistry() {
  return (window.__attnvizCanvasPayloads ||= {
    byVersion: new Map(),  // version -> {version, photo, panels}
    listeners: new Set(),  // called with a version when its payload arrives
    queued: new Map(),     // parent element -> the latest canvas call made before the drawing function came
    canvas: null,          // attention_canvas.js's entry, once the payload element has run
  });
}
