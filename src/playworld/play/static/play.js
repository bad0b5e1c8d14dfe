// playworld play page: sends held keys to the server, draws the frames it streams back.
// Protocol: see src/playworld/play/protocol.py. Frames are binary: a 24-byte little-endian header
// (magic "PWF1", step u32, applied key seq u32, width u16, height u16, views u8, flags u8, pad u16,
// step ms f32) and then `views` raw RGB images. `window.pw` exposes the state for tests and benchmarks.
"use strict";

const FLAG_AGENT = 1, FLAG_RECORDING = 2, FLAG_REAL_DONE = 4, FLAG_PAUSED = 8;
const $ = (id) => document.getElementById(id);
const pw = (window.pw = {
  ws: null, hello: null, lastStatus: null, events: {}, frames: 0, lastFrame: null, errors: [], busy: null,
  seq: 0, held: [], sentAt: new Map(), latencies: [], stepTimes: [], frameTimes: [], statusWaiters: [], recordings: [],
  send(obj) { if (pw.ws && pw.ws.readyState === WebSocket.OPEN) pw.ws.send(JSON.stringify(obj)); },
  requestStatus() { return new Promise((resolve) => { pw.statusWaiters.push(resolve); pw.send({ type: "status" }); }); },
  fps() { const now = performance.now(); return pw.frameTimes.filter((t) => now - t <= 1000).length; },
});
const codes = new Set();
const images = {};

function message(text, info = false) {
  const el = $("message");
  el.textContent = text;
  el.className = info ? "info" : "";
}

function connect() {
  // a server started with --token set a cookie when this page was opened with ?token=...; pass it on as well
  const token = new URLSearchParams(location.search).get("token");
  const query = token ? "?token=" + encodeURIComponent(token) : "";
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + query);
  ws.binaryType = "arraybuffer";
  pw.ws = ws;
  ws.onopen = () => { $("conn").textContent = "connected"; $("conn").className = "pill ok"; };
  ws.onclose = (e) => {
    $("conn").textContent = pw.busy ? "busy" : "disconnected";
    $("conn").className = "pill bad";
    if (!pw.busy) message(`disconnected (${e.code}); reload the page to play again`);
  };
  ws.onmessage = (e) => (typeof e.data === "string" ? onJson(JSON.parse(e.data)) : onFrame(e.data));
}

function onJson(msg) {
  if (msg.type === "hello") onHello(msg);
  else if (msg.type === "status") onStatus(msg);
  else if (msg.type === "error") { pw.errors.push(msg.message); message("server: " + msg.message); }
  else if (msg.type === "busy") { pw.busy = msg.message; message(msg.message); }
  else if (msg.type === "recording") onRecording(msg);
}

function onHello(msg) {
  pw.hello = msg;
  const spec = msg.spec;
  $("title").textContent = `${spec.world || "model"} · ${spec.resolution}×${spec.resolution} · ${msg.source.from || ""}`;
  for (const id of ["model", "real"]) { $(id).width = spec.resolution; $(id).height = spec.resolution; }
  $("real-fig").hidden = !msg.has_real;
  msg.codes.forEach((c) => codes.add(c));
  const legend = $("legend");
  legend.innerHTML = "";
  for (const b of msg.legend) {
    const row = legend.insertRow();
    row.insertCell().innerHTML = b.keys.map((k, i) => `<kbd data-code="${b.codes[i]}">${k}</kbd>`).join(" ") || "–";
    row.insertCell().textContent = b.does;
  }
  const agent = $("agent");
  for (const name of msg.agents) agent.add(new Option(`agent: ${name}`, name));
  if (msg.sampling_steps !== null) {
    $("steps-label").hidden = false;
    $("sampling-steps").value = msg.sampling_steps;
    if (msg.max_sampling_steps) $("sampling-steps").max = msg.max_sampling_steps;
  }
}

function onStatus(msg) {
  pw.lastStatus = msg;
  // the next periodic status replaces lastStatus within a second, so one-off events are also counted
  if (msg.event) pw.events[msg.event] = (pw.events[msg.event] || 0) + 1;
  $("status").textContent = JSON.stringify(msg, null, 1);
  $("pause").classList.toggle("on", msg.paused);
  $("pause").textContent = msg.paused ? "Resume" : "Pause";
  $("step-once").disabled = !msg.paused;
  $("record").classList.toggle("on", msg.recording !== null);
  $("record").textContent = msg.recording !== null ? `■ Stop (${msg.recording})` : "● Record";
  if (msg.record_full) message("recording is full; stopping it", true);
  if (msg.sampling_steps !== null && document.activeElement !== $("sampling-steps")) $("sampling-steps").value = msg.sampling_steps;
  $("agent").value = msg.agent || "";
  if (msg.event === "reset") { pw.driftWarned = false; message(msg.start || "new start", true); }
  showDrift(msg.drift);
  const waiters = pw.statusWaiters.splice(0);
  waiters.forEach((w) => w(msg));
}

// The drift indicator: PSNR against the real view (or the edge-energy ratio without one); a hint once per start.
function showDrift(d) {
  const el = $("drift");
  if (!d) { el.textContent = "–"; el.className = ""; return; }
  el.textContent = d.psnr_vs_real !== null ? `${d.psnr_vs_real.toFixed(1)} dB` : `${d.texture_ratio.toFixed(2)}× edges`;
  el.className = d.drifted ? "bad" : "ok";
  if (d.drifted && !pw.driftWarned) { pw.driftWarned = true; message(d.hint); }
}

function onRecording(msg) {
  pw.recordings.push(msg);
  $("downloads").innerHTML =
    `<a href="${msg.mp4}" download>session.mp4</a><a href="${msg.json}" download>actions.json</a>` +
    `<span class="hint">${msg.frames} frames</span>`;
  message("recording ready", true);
}

function draw(id, data, offset, w, h) {
  let img = images[id];
  if (!img || img.width !== w || img.height !== h) img = images[id] = new ImageData(w, h);
  const px = img.data;
  for (let i = 0, j = offset; i < w * h * 4; i += 4, j += 3) {
    px[i] = data[j]; px[i + 1] = data[j + 1]; px[i + 2] = data[j + 2]; px[i + 3] = 255;
  }
  $(id).getContext("2d").putImageData(img, 0, 0);
}

function onFrame(buf) {
  const v = new DataView(buf);
  if (String.fromCharCode(v.getUint8(0), v.getUint8(1), v.getUint8(2), v.getUint8(3)) !== "PWF1") return;
  const step = v.getUint32(4, true), seq = v.getUint32(8, true), w = v.getUint16(12, true), h = v.getUint16(14, true);
  const views = v.getUint8(16), flags = v.getUint8(17), stepMs = v.getFloat32(20, true);
  const bytes = new Uint8Array(buf);
  draw("model", bytes, 24, w, h);
  if (views > 1) draw("real", bytes, 24 + w * h * 3, w, h);
  const now = performance.now();
  // key->frame latency: every key press whose seq this frame's action already includes.
  for (const [s, t] of pw.sentAt) {
    if (s <= seq) { if (!(flags & FLAG_AGENT)) pw.latencies.push(now - t); pw.sentAt.delete(s); }
  }
  pw.stepTimes.push(stepMs);
  for (const a of [pw.latencies, pw.stepTimes]) if (a.length > 500) a.splice(0, a.length - 500);
  pw.frames += 1;
  pw.frameTimes.push(now);
  while (pw.frameTimes.length && now - pw.frameTimes[0] > 5000) pw.frameTimes.shift();
  pw.lastFrame = { step, seq, w, h, views, flags, stepMs, at: now };
  $("step").textContent = step;
  $("step-ms").textContent = stepMs.toFixed(1);
  $("real-done").hidden = !(flags & FLAG_REAL_DONE);
}

// Stats refresh a few times a second (not per frame: cheap and readable).
setInterval(() => {
  $("fps").textContent = pw.fps();
  const last = pw.latencies.slice(-20).sort((a, b) => a - b);
  if (last.length) $("latency").textContent = last[Math.floor(last.length / 2)].toFixed(0);
  const st = pw.lastStatus;
  if (st && st.action !== null && st.action !== undefined) {
    const names = pw.hello ? pw.hello.action_names : [];
    const move = typeof st.action === "number" && names[st.action] ? names[st.action] : JSON.stringify(st.action);
    $("action").textContent = st.action_by === "agent" ? `${move} (agent ${st.agent})` : move;
  } else if (st) $("action").textContent = st.agent ? `agent ${st.agent}` : "–";
}, 250);

function sendKeys(pressed) {
  pw.seq += 1;
  if (pressed) pw.sentAt.set(pw.seq, performance.now());
  pw.send({ type: "keys", down: pw.held, seq: pw.seq });
  document.querySelectorAll("kbd[data-code]").forEach((k) => k.classList.toggle("held", pw.held.includes(k.dataset.code)));
}

function typing(e) { return e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement; }

window.addEventListener("keydown", (e) => {
  if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (codes.has(e.code)) {
    e.preventDefault();
    if (!e.repeat && !pw.held.includes(e.code)) { pw.held.push(e.code); sendKeys(true); }
    return;
  }
  if (e.repeat) return;
  if (e.code === "KeyR") $("reset").click();
  else if (e.code === "KeyP") $("pause").click();
  else if (e.code === "KeyN") $("step-once").click();
});
window.addEventListener("keyup", (e) => {
  const i = pw.held.indexOf(e.code);
  if (i >= 0) { pw.held.splice(i, 1); sendKeys(false); }
});
window.addEventListener("blur", () => { if (pw.held.length) { pw.held = []; sendKeys(false); } });

$("reset").onclick = () => pw.send({ type: "reset" });
$("pause").onclick = () => pw.send({ type: "pause", on: !(pw.lastStatus && pw.lastStatus.paused) });
$("step-once").onclick = () => pw.send({ type: "step" });
$("agent").onchange = (e) => { pw.send({ type: "agent", name: e.target.value || null }); e.target.blur(); };
$("sampling-steps").onchange = (e) => {
  const n = parseInt(e.target.value, 10);
  if (n >= 1) pw.send({ type: "sampling_steps", value: n });
  e.target.blur();
};
$("record").onclick = () => pw.send({ type: "record", on: !(pw.lastStatus && pw.lastStatus.recording !== null) });

connect();
