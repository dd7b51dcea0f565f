// The host of the standalone HTML file (attnviz.viz.standalone): it calls the two canvas scripts, as Streamlit
// does, with the data the file carries, and keeps the settings a Streamlit page keeps on the server: the mode,
// the colour scale, the opacity. The canvases pin in the page (data.local_pins), so clicks need no server.
// `attentionCanvas` and `channelCanvas` are the scripts' default exports, defined before this script.

(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("attnviz-data").textContent);
  const nothing = () => {};
  const position = document.getElementById("attnviz-position");
  const view = { ...data.position };

  function drawPosition() {
    attentionCanvas({ data: view, parentElement: position, setTriggerValue: nothing, setStateValue: nothing });
    delete view.pins;  // the page keeps its own pins from here on (the scripts' contract)
  }

  for (const input of document.querySelectorAll("#attnviz-controls input")) {
    input.addEventListener("input", () => {
      view[input.name] = input.type === "range" ? Number(input.value) : input.value;
      drawPosition();
    });
  }
  document.getElementById("attnviz-clear").addEventListener("click", () => {
    view.pins = [];
    drawPosition();
  });
  drawPosition();

  data.channels.forEach((channelData, k) => {
    const parent = document.getElementById(`attnviz-channels-${k}`);
    channelCanvas({ data: channelData, parentElement: parent, setTriggerValue: nothing, setStateValue: nothing });
  });
})();
