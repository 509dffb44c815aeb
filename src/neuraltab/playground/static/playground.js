// neuraltab playground: draws what the server computes (frames over a WebSocket) and sends the controls back.
// The whole state lives in the URL hash; window.playground is the automation hook.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const LRS = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
  const RATES = [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
  const TOYS = ["circle", "xor", "gauss", "spiral", "plane", "multi-gaussian"];
  const FEATURES = ["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)", "sin(x2)"];
  const FEATURE_LABELS = {"x1": "X\u2081", "x2": "X\u2082", "x1^2": "X\u2081\u00b2", "x2^2": "X\u2082\u00b2",
    "x1*x2": "X\u2081X\u2082", "sin(x1)": "sin(X\u2081)", "sin(x2)": "sin(X\u2082)"};
  const DEFAULTS = {dataset: "circle", noise: 0, ratio: 50, seed: 1, lr: 0.03, optimizer: "sgd", activation: "tanh",
    regularization: "none", rate: 0, dropout: 0, batch: 10, loss: "squared_error", network: [4, 2],
    features: ["x1", "x2"], model: "mlp", speed: 0, teaching: false, x: null, y: null};
  // a table's starting point: neuraltab's classic MLP recipe rather than the Playground's tiny tanh network
  const TABLE_DEFAULTS = {network: [64, 64], activation: "relu", optimizer: "adam", lr: 0.003, batch: 64,
    loss: "cross_entropy", ratio: 70, speed: 1};
  const TEACHING = {optimizer: "sgd", batch: 1, regularization: "none", dropout: 0};  // plain SGD, one example
  const CLASS_COLOURS = [[245, 147, 34], [8, 119, 189], [46, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]];

  // ------------------------------------------------------------------------------------------------ state
  let settings = Object.assign({}, DEFAULTS);
  let view = {showTest: false, discretize: false};
  let ws = null, sessionId = null, data = null, layers = null, frame = null, pending = 0, drawQueued = false;
  let running = false, history = [], frameCount = 0, teachReport = null, chosen = null, upload = null;
  let drawnWeights = true;  // TabM's weights are not drawn: its nodes stand alone
  let tableGiven = false, lastCommand = "", focusNode = null, lastPixels = null;

  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    const s = Object.assign({}, DEFAULTS, h.get("dataset") === "table" ? TABLE_DEFAULTS : {});
    for (const [k, v] of h.entries()) {
      if (!(k in DEFAULTS)) continue;
      if (k === "network") s[k] = v === "" ? [] : v.split(",").map(Number);
      else if (k === "features") s[k] = v === "" ? [] : v.split(",");
      else if (k === "teaching") s[k] = v === "1" || v === "true";
      else if (typeof DEFAULTS[k] === "number") s[k] = Number(v);
      else s[k] = v;
    }
    view.showTest = h.get("showTest") === "1";
    view.discretize = h.get("discretize") === "1";
    return {settings: s, play: h.get("play") === "1"};
  }

  function writeHash() {
    const h = new URLSearchParams();
    for (const k of Object.keys(DEFAULTS)) {
      const v = settings[k];
      if (v === null || v === undefined) continue;
      h.set(k, Array.isArray(v) ? v.join(",") : (typeof v === "boolean" ? (v ? "1" : "0") : String(v)));
    }
    if (view.showTest) h.set("showTest", "1");
    if (view.discretize) h.set("discretize", "1");
    if (running) h.set("play", "1");
    const text = "#" + h.toString();
    if (location.hash !== text) history_replace(text);
  }
  function history_replace(text) { window.history.replaceState(null, "", text); }

  // ------------------------------------------------------------------------------------------------ colours
  function shade(v) {  // -1 orange, 0 grey, +1 blue, on 31 shades as the Playground draws
    const q = Math.round((Math.max(-1, Math.min(1, v)) + 1) * 15) / 15 - 1;
    const a = q < 0 ? [245, 147, 34] : [8, 119, 189], g = [232, 234, 235], t = Math.abs(q);
    return [g[0] + (a[0] - g[0]) * t, g[1] + (a[1] - g[1]) * t, g[2] + (a[2] - g[2]) * t];
  }
  const code = (u) => u / 127.5 - 1;
  function css(rgb, alpha) { return `rgba(${rgb[0] | 0},${rgb[1] | 0},${rgb[2] | 0},${alpha === undefined ? 1 : alpha})`; }

  function paint(canvas, values, size, classes) {
    const ctx = canvas.getContext("2d");
    if (canvas.width !== size) { canvas.width = size; canvas.height = size; }
    const img = ctx.createImageData(size, size);
    for (let i = 0; i < size * size; i++) {
      let rgb, v = code(values[i]);
      if (classes) {
        const base = CLASS_COLOURS[classes[i] % CLASS_COLOURS.length], conf = (v + 1) / 2;
        const t = view.discretize ? 1 : Math.max(0, Math.min(1, conf));
        rgb = [255 + (base[0] - 255) * t, 255 + (base[1] - 255) * t, 255 + (base[2] - 255) * t];
      } else {
        rgb = shade(view.discretize ? (v >= 0 ? 1 : -1) : v);
      }
      img.data[4 * i] = rgb[0]; img.data[4 * i + 1] = rgb[1]; img.data[4 * i + 2] = rgb[2]; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  // ------------------------------------------------------------------------------------------------ socket
  function connect(play) {
    if (ws) { ws.onclose = null; ws.close(); }
    const token = new URLSearchParams(location.search).get("token");
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + (token ? "?token=" + encodeURIComponent(token) : "");
    ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    pending = 0;
    ws.onopen = () => ws.send(JSON.stringify({cmd: "hello", settings, play, upload}));
    ws.onmessage = (e) => (typeof e.data === "string" ? onJson(JSON.parse(e.data)) : onFrame(e.data));
    ws.onclose = () => { running = false; showPlay(); };
  }
  function send(msg) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg)); }

  function onJson(m) {
    if (m.type === "session") { sessionId = m.id; tableGiven = tableGiven || !!m.table; buildDatasets(); }
    else if (m.type === "data") { data = m; history = []; onData(); }
    else if (m.type === "network") { layers = m.layers; drawnWeights = m.weights; lastCommand = m.command; buildNetwork(); }
    else if (m.type === "error" || m.type === "notice") { showMessage(m.message); if (m.level === "error") { running = false; showPlay(); } }
    else if (m.type === "teach") { teachReport = m; showTeach(); }
  }

  function onFrame(buf) {
    const dv = new DataView(buf), n = dv.getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
    const start = Math.ceil((4 + n) / 4) * 4, blobs = {};
    for (const b of header.blobs) {
      const T = b.dtype === "float32" ? Float32Array : Uint8Array;
      blobs[b.name] = new T(buf, start + b.offset, b.length);
    }
    frame = {header, blobs};
    frameCount++;
    pending++;
    history.push([header.epoch, header.trainLoss, header.testLoss]);
    if (header.command) lastCommand = header.command;
    if (header.diverged && header.message) { showMessage(header.message); running = false; showPlay(); }
    if (!drawQueued) { drawQueued = true; requestAnimationFrame(draw); }
  }

  // ------------------------------------------------------------------------------------------------ drawing
  function draw() {
    drawQueued = false;
    if (!frame) return;
    const h = frame.header, b = frame.blobs;
    const out = h.focus !== null && h.focus !== undefined && b.focus ? b.focus : b.output;
    paint($("heatmap"), out, 100, out === b.output ? b.classes : null);
    drawNodes(b.nodes, h);
    drawWeights(h);
    $("epoch").textContent = String(Math.floor(h.epoch)).padStart(6, "0").replace(/(\d{3})(\d{3})$/, "$1,$2");
    $("train-loss").textContent = fmt(h.trainLoss);
    $("test-loss").textContent = fmt(h.testLoss);
    $("test-metric").textContent = fmt(h.testMetric);
    drawChart();
    if (b.pcaInputs) drawProjections(b);
    while (pending > 0) { send({cmd: "ack"}); pending--; }
  }
  const fmt = (v) => (v === null || v === undefined || Number.isNaN(v) ? "-" : Number(v).toFixed(3));

  function drawPoints() {
    const c = $("points"), ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    if (!data) return;
    const toy = data.kind === "toy", W = c.width;
    for (const p of data.points) {
      if (!p[3] && !view.showTest) continue;
      const px = toy ? (p[0] + data.extent) / (2 * data.extent) * W : p[0] * W;
      const py = toy ? (data.extent - p[1]) / (2 * data.extent) * W : (1 - p[1]) * W;
      let rgb;
      if (data.task === "multiclass") rgb = CLASS_COLOURS[p[2] % CLASS_COLOURS.length];
      else if (data.task === "regression" && !toy) {
        const [lo, hi] = data.valueRange; rgb = shade(2 * (p[2] - lo) / (hi - lo) - 1);
      } else rgb = shade(p[2]);
      ctx.beginPath(); ctx.arc(px, py, toy ? 3.5 : 2.5, 0, 2 * Math.PI);
      ctx.fillStyle = css(rgb); ctx.fill();
      ctx.lineWidth = 1; ctx.strokeStyle = p[3] ? "#fff" : "#000"; ctx.stroke();
    }
  }

  function drawChart() {
    const c = $("loss-chart"), ctx = c.getContext("2d"), W = c.width, H = c.height;
    ctx.clearRect(0, 0, W, H);
    if (history.length < 2) return;
    let max = 0;
    for (const r of history) for (const v of [r[1], r[2]]) if (Number.isFinite(v)) max = Math.max(max, v);
    max = max || 1;
    const step = Math.max(1, Math.floor(history.length / W));
    for (const [i, colour] of [[1, "#777"], [2, "#000"]]) {
      ctx.beginPath(); ctx.strokeStyle = colour;
      let first = true;
      for (let k = 0; k < history.length; k += step) {
        const x = k / (history.length - 1) * W, v = history[k][i];
        if (!Number.isFinite(v)) continue;
        const y = H - v / max * (H - 2) - 1;
        if (first) { ctx.moveTo(x, y); first = false; } else ctx.lineTo(x, y);
      }
      ctx.stroke();
    }
  }

  function drawProjections(b) {
    for (const [id, coords] of [["pca-inputs", b.pcaInputs], ["pca-hidden", b.pcaHidden]]) {
      const c = $(id), ctx = c.getContext("2d"), W = c.width;
      ctx.clearRect(0, 0, W, W);
      if (!coords) continue;
      const n = coords.length / 2;
      for (let i = 0; i < n; i++) {
        const v = code(b.pred[i]);
        let fill;
        if (b.predClass) fill = css(CLASS_COLOURS[b.predClass[i] % CLASS_COLOURS.length], Math.max(0.15, (v + 1) / 2));
        else fill = css(shade(v));
        ctx.fillStyle = fill;
        ctx.fillRect((coords[2 * i] * 0.47 + 0.5) * W - 1.5, (0.5 - coords[2 * i + 1] * 0.47) * W - 1.5, 3, 3);
      }
    }
  }

  // ------------------------------------------------------------------------------------------------ network view
  let nodeEls = [], linkEls = [];
  function nodePositions() {
    const box = $("network"), width = box.clientWidth || 600, cols = layers.length;
    const pos = [];
    layers.forEach((layer, l) => {
      const x = 70 + l * (width - 120) / Math.max(1, cols - 1);
      pos.push(layer.shown.map((_, i) => [x, 40 + i * 46]));
    });
    return pos;
  }

  function buildNetwork() {
    const box = $("network");
    box.querySelectorAll(".node, .layer-head").forEach((e) => e.remove());
    nodeEls = []; linkEls = [];
    const svg = $("links");
    svg.innerHTML = "";
    if (!layers) return;
    const pos = nodePositions();
    const toy = data && data.kind === "toy";
    let index = 0;
    let inputs = layers[0];
    if (toy) {  // every feature, on or off, so that a click turns it on
      const on = settings.features;
      inputs = {shown: FEATURES.map((_, i) => i), labels: FEATURES};
      pos[0] = FEATURES.map((_, i) => [pos[0][0] ? pos[0][0][0] : 70, 40 + i * 46]);
      FEATURES.forEach((f, i) => {
        const el = makeNode(pos[0][i], FEATURE_LABELS[f]);
        if (!on.includes(f)) el.classList.add("off");
        el.onclick = () => toggleFeature(f);
        el.dataset.feature = f;
        if (on.includes(f)) { el.dataset.index = String(on.indexOf(f) >= 0 ? FEATURES.filter((g) => on.includes(g)).indexOf(f) : -1); }
        nodeEls.push(el);
      });
    } else {
      layers[0].shown.forEach((_, i) => { const el = makeNode(pos[0][i], layers[0].labels[i]); el.dataset.index = String(index + i); nodeEls.push(el); });
    }
    index = layers[0].shown.length;
    for (let l = 1; l < layers.length; l++) {
      layers[l].shown.forEach((_, i) => {
        const el = makeNode(pos[l][i], "");
        el.dataset.index = String(index + i);
        nodeEls.push(el);
      });
      index += layers[l].shown.length;
      if (l < layers.length - 1) layerHead(l, pos[l][0][0]);
    }
    $("layer-count").textContent = String(layers.length - 2);
    box.style.minHeight = Math.max(420, 60 + 46 * Math.max(...pos.map((p) => p.length))) + "px";
    // links: from every drawn node of a layer to every drawn node of the next
    const inPos = toy ? FEATURES.map((f, i) => [f, pos[0][i]]).filter(([f]) => settings.features.includes(f)).map(([, p]) => p) : pos[0];
    for (let l = 0; l < (drawnWeights ? layers.length - 1 : 0); l++) {
      const from = l === 0 ? inPos : pos[l], to = pos[l + 1], row = [];
      for (let j = 0; j < to.length; j++) {
        const line = [];
        for (let i = 0; i < from.length; i++) {
          const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
          const [x0, y0] = [from[i][0] + 18, from[i][1] + 18], [x1, y1] = [to[j][0] - 18 + 36 - 36, to[j][1] + 18];
          const mx = (x0 + x1) / 2;
          p.setAttribute("d", `M${x0},${y0} C${mx},${y0} ${mx},${y1} ${x1},${y1}`);
          p.dataset.layer = String(l); p.dataset.to = String(j); p.dataset.from = String(i);
          p.onmouseenter = (e) => hoverLink(e, p);
          p.onmouseleave = () => ($("hovercard").hidden = true);
          p.onclick = (e) => clickLink(e, p);
          svg.appendChild(p);
          line.push(p);
        }
        row.push(line);
      }
      linkEls.push(row);
    }
    if (frame) { drawNodes(frame.blobs.nodes); drawWeights(frame.header); }  // a rebuilt view, even while paused
  }

  function makeNode(p, label) {
    const el = document.createElement("div");
    el.className = "node";
    el.style.left = p[0] + "px"; el.style.top = p[1] + "px";
    const c = document.createElement("canvas"); c.width = 25; c.height = 25;
    el.appendChild(c);
    if (label) { const s = document.createElement("span"); s.className = "label"; s.textContent = label; el.appendChild(s); }
    el.onmouseenter = () => enlarge(el, true);
    el.onmouseleave = () => enlarge(el, false);
    $("network").appendChild(el);
    return el;
  }

  function layerHead(l, x) {
    const el = document.createElement("div");
    el.className = "layer-head";
    el.style.left = (x - 12) + "px"; el.style.top = "0px";
    const minus = document.createElement("button"), plus = document.createElement("button");
    minus.textContent = "\u2212"; plus.textContent = "+";
    minus.onclick = () => changeWidth(l - 1, -1); plus.onclick = () => changeWidth(l - 1, 1);
    const drawn = layers[l].shown.length < layers[l].size ? ` (${layers[l].shown.length} drawn)` : "";
    el.append(minus, " " + layers[l].size + drawn + " ", plus);
    $("network").appendChild(el);
  }

  function enlarge(el, on) {
    const big = $("enlarged");
    if (!on || el.dataset.index === undefined) { big.hidden = true; focusNode = null; send({cmd: "focus", node: null}); return; }
    focusNode = Number(el.dataset.index);
    send({cmd: "focus", node: focusNode});
    big.hidden = false;
    big.style.left = (el.offsetLeft + 44) + "px"; big.style.top = el.offsetTop + "px";
    if (frame) paintNode(big.querySelector("canvas"), frame.blobs.nodes, focusNode);
  }

  function paintNode(canvas, nodes, k) {
    const size = 25, slice = nodes.subarray(k * size * size, (k + 1) * size * size);
    paint(canvas, slice, size, null);
  }

  function drawNodes(nodes) {
    for (const el of nodeEls) {
      if (el.dataset.index === undefined || el.dataset.index === "-1") continue;
      const k = Number(el.dataset.index);
      if ((k + 1) * 625 <= nodes.length) paintNode(el.querySelector("canvas"), nodes, k);
    }
    if (focusNode !== null && !$("enlarged").hidden) paintNode($("enlarged").querySelector("canvas"), nodes, focusNode);
  }

  function drawWeights(h) {
    if (!h.weights) return;
    for (let l = 0; l < linkEls.length && l < h.weights.length; l++) {
      for (let j = 0; j < linkEls[l].length && j < h.weights[l].length; j++) {
        for (let i = 0; i < linkEls[l][j].length && i < h.weights[l][j].length; i++) {
          const w = h.weights[l][j][i], p = linkEls[l][j][i];
          p.setAttribute("stroke", css(shade(w)));
          p.setAttribute("stroke-width", String(Math.min(10, 1 + Math.abs(w) * 9 / 5)));
          p.dataset.value = String(w);
        }
      }
    }
  }

  function hoverLink(e, p) {
    const card = $("hovercard");
    card.hidden = false;
    card.textContent = "Weight is " + Number(p.dataset.value || 0).toPrecision(2);
    const box = $("network").getBoundingClientRect();
    card.style.left = (e.clientX - box.left + 10) + "px"; card.style.top = (e.clientY - box.top + 10) + "px";
  }

  function clickLink(e, p) {
    const weight = {layer: Number(p.dataset.layer), to: Number(p.dataset.to), from: Number(p.dataset.from)};
    if (settings.teaching) {
      document.querySelectorAll("#links path.chosen").forEach((q) => q.classList.remove("chosen"));
      p.classList.add("chosen");
      chosen = weight;
      // the drawn output is the positive class's logit minus the other's: explain the positive logit's weight
      if (weight.layer === layers.length - 2 && data && data.task === "binary") weight.to = 1;
      send({cmd: "teach", weight});
      $("teach").textContent = "Weight chosen: press Step.";
      return;
    }
    const card = $("hovercard");
    card.hidden = false;
    card.innerHTML = "";
    const input = document.createElement("input");
    input.type = "number"; input.step = "0.01"; input.value = Number(p.dataset.value || 0).toFixed(3);
    input.onkeydown = (ev) => {
      if (ev.key === "Enter") {
        send(Object.assign({cmd: "edit", value: Number(input.value)}, weight)); card.hidden = true;
      }
    };
    card.appendChild(input);
    input.focus();
  }

  // ------------------------------------------------------------------------------------------------ controls
  function set(changes) {
    Object.assign(settings, changes);
    syncControls();
    writeHash();
    send({cmd: "set", settings: changes});
  }

  function toggleFeature(f) {
    const on = settings.features.includes(f) ? settings.features.filter((g) => g !== f) : FEATURES.filter((g) => g === f || settings.features.includes(g));
    set({features: on});
  }
  function changeWidth(layer, d) {
    const max = data && data.kind === "table" ? 256 : 8, net = settings.network.slice();
    const w = net[layer] + d * (net[layer] >= 16 && data && data.kind === "table" ? net[layer] / 2 : 1);
    net[layer] = Math.max(1, Math.min(max, Math.round(w)));
    set({network: net});
  }

  function buildDatasets() {
    const box = $("datasets");
    box.innerHTML = "";
    const names = TOYS.concat(tableGiven || upload ? ["table"] : []);
    for (const name of names) {
      const b = document.createElement("button");
      b.textContent = name; b.dataset.dataset = name;
      if (settings.dataset === name) b.classList.add("selected");
      b.onclick = () => {
        if (name === settings.dataset) return;
        const table = name === "table";
        const wasTable = settings.dataset === "table";
        settings.dataset = name;
        if (table !== wasTable) {  // a table and a toy set have different sensible defaults: start again
          Object.assign(settings, table ? TABLE_DEFAULTS : {network: [4, 2], activation: "tanh",
            optimizer: "sgd", lr: 0.03, batch: 10, loss: "squared_error", ratio: 50, speed: 0, model: "mlp"});
          syncControls(); writeHash(); connect(false); buildDatasets();
        } else set({dataset: name});
        box.querySelectorAll("button").forEach((x) => x.classList.toggle("selected", x.dataset.dataset === name));
      };
      box.appendChild(b);
    }
  }

  function syncControls() {
    for (const el of document.querySelectorAll("[data-key]")) {
      const v = settings[el.dataset.key];
      if (el.type === "checkbox") el.checked = !!v;
      else if (v !== null && v !== undefined) el.value = String(v);
    }
    $("noise-value").textContent = settings.noise; $("ratio-value").textContent = settings.ratio;
    $("show-test").checked = view.showTest; $("discretize").checked = view.discretize;
  }

  function onData() {
    const table = data.kind === "table";
    $("table-controls").hidden = !table;
    $("projections").hidden = !table;
    $("metric-name").textContent = data.task === "regression" ? "R\u00b2" : "accuracy";
    $("loss").querySelector("option[value=cross_entropy]").disabled = data.task === "regression";
    if (data.task === "regression") { settings.loss = "squared_error"; syncControls(); }  // as the server trains
    if (table) {
      for (const id of ["axis-x", "axis-y"]) {
        const sel = $(id);
        sel.innerHTML = "";
        for (const f of data.ranked) { const o = document.createElement("option"); o.value = f; o.textContent = f; sel.appendChild(o); }
      }
      $("axis-x").value = data.x.name; $("axis-y").value = data.y.name;
      settings.x = data.x.name; settings.y = data.y.name;
      $("table-info").textContent = `${data.source}: ${data.rows.train} training rows, ${data.rows.test} test rows; ` +
        `target ${data.target} (${data.task}). The map is a slice through ${data.x.name} and ${data.y.name}, the other ` +
        `columns at their median or mode.`;
      const tsel = $("target");
      if (upload && data.columns) { /* kept from the upload */ }
      if (!tsel.options.length) { const o = document.createElement("option"); o.textContent = data.target; tsel.appendChild(o); }
      tsel.value = data.target;
      axisLabels(data.x, $("x-axis")); axisLabels(data.y, $("y-axis"), true);
    } else {
      axisLabels({min: -6, max: 6, kind: "numeric"}, $("x-axis")); axisLabels({min: -6, max: 6, kind: "numeric"}, $("y-axis"), true);
    }
    if (data.command) lastCommand = data.command;
    drawPoints();
    writeHash();
  }

  function axisLabels(axis, el, vertical) {
    const n = 5, parts = [];
    if (axis.kind === "categorical") {
      const labels = axis.labels.slice(0, 6);
      (vertical ? labels.slice().reverse() : labels).forEach((l) => parts.push(l));
    } else {
      for (let i = 0; i < n; i++) {
        const v = axis.min + (axis.max - axis.min) * i / (n - 1);
        parts.push(Math.abs(v) >= 1000 ? v.toFixed(0) : Number(v.toPrecision(3)));
      }
      if (vertical) parts.reverse();
    }
    el.innerHTML = parts.map((p) => `<span>${String(p).replace(/</g, "&lt;")}</span>`).join("");
  }

  function showMessage(text) { const m = $("message"); m.hidden = !text; m.textContent = text || ""; }
  function showPlay() { $("play").innerHTML = running ? "&#10074;&#10074; pause" : "&#9654; play"; }

  function showTeach() {
    const r = teachReport, f = (v) => Number(v).toPrecision(4);
    if (!r) return;
    const adam = r.optimizer !== "sgd";
    $("teach").innerHTML = `<table>
      <tr><td>example</td><td id="teach-example">${(r.example || []).map(f).join(", ")}</td></tr>
      <tr><td>error at the neuron \u2202L/\u2202a</td><td id="teach-error">${f(r.error)}</td></tr>
      <tr><td>activation's slope</td><td id="teach-slope">${f(r.slope)}</td></tr>
      <tr><td>input</td><td id="teach-input">${f(r.input)}</td></tr>
      <tr><td>learning rate</td><td id="teach-lr">${f(r.lr)}</td></tr>
      <tr><td>\u2212lr \u00d7 error \u00d7 slope \u00d7 input</td><td id="teach-product">${f(r.product)}</td></tr>
      <tr><td>${adam ? "plain-SGD change" : "predicted change"}</td><td id="teach-predicted">${f(r.sgdChange)}</td></tr>
      <tr><td>actual change</td><td id="teach-actual">${f(r.actualChange)}</td></tr>
      <tr><td></td><td id="teach-check">${adam ? "under " + r.optimizer + ", the step differs" : (r.agrees ? "\u2713 equal" : "\u2717 differs")}</td></tr></table>`;
  }

  function wire() {
    $("lr").innerHTML = LRS.map((v) => `<option value="${v}">${v}</option>`).join("");
    $("rate").innerHTML = RATES.map((v) => `<option value="${v}">${v}</option>`).join("");
    for (const el of document.querySelectorAll("[data-key]")) {
      el.addEventListener("change", () => {
        const k = el.dataset.key;
        let v = el.type === "checkbox" ? el.checked : el.value;
        if (typeof DEFAULTS[k] === "number") v = Number(v);
        if (k === "teaching" && v) Object.assign(settings, TEACHING);
        set({[k]: v});
      });
    }
    $("noise").oninput = () => ($("noise-value").textContent = $("noise").value);
    $("ratio").oninput = () => ($("ratio-value").textContent = $("ratio").value);
    $("play").onclick = () => (running ? api.pause() : api.play());
    $("step").onclick = () => api.step();
    $("reset").onclick = () => { history = []; showMessage(""); send({cmd: "reset"}); };
    $("regenerate").onclick = () => set({seed: (settings.seed + 1) % 100000});
    $("show-test").onchange = () => { view.showTest = $("show-test").checked; drawPoints(); writeHash(); };
    $("discretize").onchange = () => { view.discretize = $("discretize").checked; writeHash(); draw(); };
    $("add-layer").onclick = () => { if (settings.network.length < 6) set({network: settings.network.concat([2])}); };
    $("remove-layer").onclick = () => { if (settings.network.length > 0) set({network: settings.network.slice(0, -1)}); };
    $("show-command").onclick = () => { const c = $("command"); c.hidden = false; c.textContent = lastCommand; };
    $("save").onclick = () => { if (sessionId) location.href = "save/" + sessionId + location.search; };
    $("download-data").onclick = () => { if (sessionId) location.href = "data/" + sessionId + location.search; };
    $("file").onchange = () => { if ($("file").files[0]) sendFile($("file").files[0], ""); };
    $("target").onchange = () => { if (lastFile) sendFile(lastFile, $("target").value); };
    const drop = $("drop");
    drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
    drop.ondragleave = () => drop.classList.remove("over");
    drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files[0]) sendFile(e.dataTransfer.files[0], ""); };
    window.addEventListener("resize", buildNetwork);
  }

  let lastFile = null;
  async function sendFile(file, target) {
    lastFile = file;
    const token = new URLSearchParams(location.search).get("token");
    const q = new URLSearchParams({name: file.name, target});
    if (token) q.set("token", token);
    let reply;
    try {
      const r = await fetch("upload?" + q.toString(), {method: "POST", body: file});
      reply = await r.json();
    } catch (err) { showMessage("upload failed: " + err); return; }
    if (reply.error) { showMessage(reply.error); return; }
    showMessage("");
    upload = reply.upload;
    const tsel = $("target");
    tsel.innerHTML = reply.columns.map((c) => `<option>${c.replace(/</g, "&lt;")}</option>`).join("");
    tsel.value = reply.target;
    Object.assign(settings, TABLE_DEFAULTS, {dataset: "table", x: null, y: null});
    syncControls(); writeHash(); buildDatasets();
    connect(false);
  }

  // ------------------------------------------------------------------------------------------------ the hook
  const api = {
    state() {
      const h = frame ? frame.header : {};
      return {epoch: h.epoch || 0, trainLoss: h.trainLoss, testLoss: h.testLoss, trainMetric: h.trainMetric,
        testMetric: h.testMetric, running, dataset: settings.dataset, frames: frameCount, step: h.step || 0,
        diverged: !!h.diverged, message: $("message").hidden ? null : $("message").textContent,
        settings: JSON.parse(JSON.stringify(settings)), teach: teachReport, command: lastCommand,
        session: sessionId, table: data && data.kind === "table" ? {x: data.x.name, y: data.y.name, task: data.task} : null};
    },
    play() { running = true; showPlay(); send({cmd: "play"}); writeHash(); },
    pause() { running = false; showPlay(); send({cmd: "pause"}); writeHash(); },
    step() { running = false; showPlay(); send({cmd: "step"}); writeHash(); },
    set(changes) { set(changes); },
    chooseWeight(weight) { chosen = weight; send({cmd: "teach", weight}); },
    canvasHash() {
      const c = $("heatmap"), d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let h = 0;
      for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) >>> 0;
      return h;
    },
  };
  window.playground = api;

  const start = readHash();
  settings = start.settings;
  if (settings.teaching) Object.assign(settings, TEACHING);
  running = start.play;
  wire();
  syncControls();
  showPlay();
  buildDatasets();
  connect(start.play);
  window.addEventListener("hashchange", () => {
    const next = readHash();
    const changed = {};
    for (const k of Object.keys(DEFAULTS)) if (JSON.stringify(next.settings[k]) !== JSON.stringify(settings[k])) changed[k] = next.settings[k];
    if (Object.keys(changed).length) set(changed);
    if (next.play !== running) (next.play ? api.play() : api.pause());
  });
})();
