// The live photo's own script in the Streamlit app (attnviz.app.attention_canvas): a stub. The drawing script
// (attention_canvas.js) comes with the payload element (canvas_payload.js), whose message the browser keeps, so
// that a pin or a setting sends this stub and a few hundred bytes of data, not 25 KB of script each time.

export default function (component) {
  const registry = canvasRegistry();
  if (registry.canvas) return registry.canvas(component);
  registry.queued.set(component.parentElement, component);  // drawn when the script arrives
  return () => {};
}
