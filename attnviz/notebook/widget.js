// The app's live views in a notebook (attnviz.notebook.widget): anywidget's model in, the app's canvas out.
//
// KIND ("position" or "channel") and CANVAS (the text of the app's canvas script, as its Streamlit component gets
// it from attnviz.viz.canvas.page_script) are written above this adapter by attnviz.notebook.widget. The canvas
// script is not copied or changed: it is imported as the module it is and called as a host calls it (the contract
// at its top), with {data, parentElement, setTriggerValue, setStateValue}. Its data are the Python side's `data`
// trait (data.local_pins: the page pins by itself) with the settings, pins or row the other traits hold now; what
// the page chooses by a click comes back through setStateValue into those traits, which sync to Python.

let canvasModule;
function canvas() {
  canvasModule ??= import(URL.createObjectURL(new Blob([CANVAS], { type: "text/javascript" })));
  return canvasModule;
}

// each view's traits, besides `data`, that its canvas draws from; the first is what a click sets
const TRAITS = {
  position: { root: "attnviz-canvas", traits: ["pins", "mode", "scale", "opacity"] },
  channel: { root: "attnviz-channels", traits: ["channel"] },
};

export default {
  async render({ model, el }) {
    const { root, traits } = TRAITS[KIND];
    const draw = (await canvas()).default;
    const parentElement = document.createElement("div");
    parentElement.className = "attnviz-notebook";
    parentElement.innerHTML = `<div class="${root}"></div>`;
    el.appendChild(parentElement);
    const setStateValue = (name, value) => {
      if (name !== traits[0]) return;
      model.set(name, value);
      model.save_changes();
    };
    const redraw = () => {
      const data = { ...model.get("data") };
      for (const trait of traits) data[trait] = model.get(trait);
      draw({ data, parentElement, setTriggerValue: () => {}, setStateValue });
    };
    const events = ["data", ...traits].map((trait) => `change:${trait}`);
    for (const event of events) model.on(event, redraw);
    redraw();
    return () => {
      for (const event of events) model.off(event, redraw);
    };
  },
};
