// The playground page: every answer comes from the gateway's JSON API (the real engine);
// this file only sends the editor's text and draws what comes back. Text is always set
// with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem("sluicegate-key") || "", replay: null, frame: -1, timer: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function banner(message) {
  const node = $("banner");
  node.textContent = message || "";
  node.hidden = !message;
}

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.key) headers.Authorization = "Bearer " + state.key;
  const response = await fetch("/ui/api/" + path, {
    method: body === undefined ? "GET" : "POST",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) {
    banner("This gateway needs a client key: enter it above and press \"Use key\".");
    $("api-key").focus();
    throw new Error("unauthorized");
  }
  if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
  banner("");
  return data;
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// -- key ------------------------------------------------------------------------------

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("api-key").value.trim();
  if ($("remember-key").checked && state.key) sessionStorage.setItem("sluicegate-key", state.key);
  else sessionStorage.removeItem("sluicegate-key");
  start();
});

// -- editor ---------------------------------------------------------------------------

const editor = $("policy");
let problemLines = new Map();

function drawGutter() {
  const count = editor.value.split("\n").length;
  const gutter = $("gutter");
  gutter.replaceChildren();
  for (let line = 1; line <= count; line++) {
    const level = problemLines.get(line);
    gutter.append(level ? el("span", { class: level === "error" ? "bad" : "warn", text: line + "\n" })
      : document.createTextNode(line + "\n"));
  }
  gutter.scrollTop = editor.scrollTop;
}

function goToLine(line, column) {
  const lines = editor.value.split("\n");
  let offset = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
  offset += Math.max(0, column - 1);
  editor.focus();
  editor.setSelectionRange(offset, offset);
  editor.scrollTop = Math.max(0, (line - 5) * 18);
}

async function check() {
  const status = $("check-status");
  let result;
  try { result = await api("check", { policy: editor.value }); } catch (error) {
    status.textContent = error.message; status.className = "status bad"; return false;
  }
  problemLines = new Map();
  const list = $("problems");
  list.replaceChildren();
  for (const problem of result.problems) {
    if (problemLines.get(problem.line) !== "error") problemLines.set(problem.line, problem.level);
    const where = "line " + problem.line + ", column " + problem.column +
      (problem.rule ? ", rule " + problem.rule : "");
    const button = el("button", { type: "button", class: "problem", "data-line": problem.line,
      title: problem.text, text: where + ": " + problem.level + ": " + problem.message });
    button.addEventListener("click", () => goToLine(problem.line, problem.column));
    list.append(el("li", { class: problem.level }, button));
  }
  editor.setAttribute("aria-invalid", result.ok ? "false" : "true");
  status.textContent = result.ok ? result.summary : "The policy does not load: see the problems below.";
  status.className = result.ok ? "status ok" : "status bad";
  drawGutter();
  return result.ok;
}

const onEdit = debounce(async () => { if (await check()) refreshPanel(); }, 350);
editor.addEventListener("input", () => { drawGutter(); onEdit(); });
editor.addEventListener("scroll", () => { $("gutter").scrollTop = editor.scrollTop; });
editor.addEventListener("keydown", (event) => {
  // Tab indents in the editor; Escape then Tab leaves it, so the keyboard is never trapped.
  if (event.key === "Escape") { editor.dataset.leave = "1"; return; }
  if (event.key === "Tab" && !event.shiftKey && editor.dataset.leave !== "1") {
    event.preventDefault();
    editor.setRangeText("  ", editor.selectionStart, editor.selectionEnd, "end");
    editor.dispatchEvent(new Event("input"));
  }
  delete editor.dataset.leave;
});

$("download").addEventListener("click", () => {
  const name = (editor.value.match(/^name:\s*([\w.-]+)/m) || [null, "policy"])[1];
  const link = el("a", { href: URL.createObjectURL(new Blob([editor.value], { type: "application/yaml" })),
    download: name + ".yaml" });
  document.body.append(link);
  link.click();
  link.remove();
});

// -- tabs -----------------------------------------------------------------------------

const tabs = [...document.querySelectorAll('[role="tab"]')];
function selectTab(tab) {
  for (const other of tabs) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  tab.focus();
  refreshPanel();
}
for (const tab of tabs) {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step) selectTab(tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length]);
  });
}
const current = () => tabs.find((t) => t.getAttribute("aria-selected") === "true").id;

function refreshPanel() {
  const tab = current();
  if (tab === "tab-try") scan();
  else if (tab === "tab-replay") loadReplay();
  else if (tab === "tab-live") live();
}

// -- try ------------------------------------------------------------------------------

const tip = $("hit-tip");
function describe(hit, rules) {
  const rule = rules[hit.rule] || {};
  return hit.rule + " — " + hit.action + (hit.intended ? " (would " + hit.intended + ")" : "") +
    ", characters " + hit.start + "–" + hit.end + (rule.description ? ": " + rule.description : "") +
    (rule.kind ? " [" + rule.kind + " rule]" : "");
}

function showTip(mark) {
  tip.textContent = mark.dataset.tip;
  tip.hidden = false;
  const box = mark.getBoundingClientRect();
  tip.style.left = window.scrollX + box.left + "px";
  tip.style.top = window.scrollY + box.bottom + 4 + "px";
}

function highlighted(text, hits, rules) {
  const nodes = [];
  let pos = 0;
  for (const hit of hits) {
    if (hit.start < pos) continue; // an observing hit inside another: listed in the table
    nodes.push(document.createTextNode(text.slice(pos, hit.start)));
    const mark = el("mark", { class: hit.action, tabindex: "0", "data-rule": hit.rule,
      "aria-label": describe(hit, rules), text: text.slice(hit.start, hit.end) || "∅" });
    mark.dataset.tip = describe(hit, rules);
    mark.addEventListener("mouseenter", () => showTip(mark));
    mark.addEventListener("focus", () => showTip(mark));
    mark.addEventListener("mouseleave", () => { tip.hidden = true; });
    mark.addEventListener("blur", () => { tip.hidden = true; });
    nodes.push(mark);
    pos = Math.max(pos, hit.end);
  }
  nodes.push(document.createTextNode(text.slice(pos)));
  return nodes;
}

async function scan() {
  const status = $("scan-status");
  const text = $("sample").value;
  let result;
  try {
    result = await api("scan", { policy: editor.value, text, direction: $("direction").value });
  } catch (error) { status.textContent = error.message; status.className = "status bad"; return; }
  $("scan-input").replaceChildren(...highlighted(text, result.hits, result.rules));
  $("scan-output").textContent = result.text;
  const rows = result.hits.map((hit) => el("tr", {},
    el("td", { text: hit.rule }), el("td", { text: hit.action + (hit.reason !== "match" ? " (" + hit.reason + ")" : "") }),
    el("td", { text: hit.start + "–" + hit.end }), el("td", { text: text.slice(hit.start, hit.end) })));
  $("hits").replaceChildren(...rows);
  const failed = result.failures.map((f) => f.rule + ": " + f.error).join("; ");
  status.textContent = result.hits.length + " hit(s)" + (result.cut ? ", cut off" : "") +
    (failed ? "; verdicts failed: " + failed : "");
  status.className = "status";
}
$("run-scan").addEventListener("click", scan);
$("sample").addEventListener("input", debounce(refreshPanel, 400));
$("direction").addEventListener("change", refreshPanel);

// -- replay ---------------------------------------------------------------------------

// Settings can change while a replay is loading: only the newest request's answer counts,
// so an older one arriving late cannot reset the replay the user is stepping through.
let replayRequest = 0;

async function loadReplay() {
  stopReplay();
  const request = ++replayRequest;
  const status = $("replay-status");
  status.textContent = "loading…";
  let replay;
  try {
    replay = await api("replay", {
      policy: editor.value, text: $("sample").value, direction: $("direction").value,
      chunking: $("chunking").value, seed: Number($("seed").value) || 0, lag: Number($("lag").value) || 0,
    });
  } catch (error) {
    if (request !== replayRequest) return;
    state.replay = null; status.textContent = error.message; status.className = "status bad"; return;
  }
  if (request !== replayRequest) return;
  state.replay = replay;
  status.textContent = state.replay.events + " events";
  status.className = "status";
  drawTimeline();
  drawShares();
  showFrame(-1);
}

function stopReplay() {
  clearInterval(state.timer);
  state.timer = null;
  $("replay-play").textContent = "Play";
}

function showFrame(index) {
  const replay = state.replay;
  if (!replay) return;
  state.frame = Math.max(-1, Math.min(index, replay.frames.length - 1));
  const frames = replay.frames.slice(0, state.frame + 1);
  const frame = frames[frames.length - 1];
  const view = $("stream");
  view.replaceChildren();
  for (const f of frames) {
    for (const [start, end, text, redacted] of f.pieces) {
      view.append(redacted ? el("span", { class: "redacted", title: "redacted: characters " + start + "–" + end, text })
        : document.createTextNode(text));
    }
    if (f.notice) view.append(el("span", { class: "cutmark", text: f.notice }));
  }
  const info = $("frame-info");
  if (!frame) { info.textContent = "Before the first event."; return; }
  const source = replay.text;
  if (frame.cut) {
    const cutHit = frames.flatMap((f) => f.hits).find((h) => h.action === "block");
    view.append(el("span", { class: "cutmark", "data-cut": "1",
      text: "✂ cut" + (cutHit ? " by " + cutHit.rule : "") }));
    view.append(el("span", { class: "unsent", title: "never sent", text: source.slice(frame.released, frame.received) }));
  } else {
    if (frame.released < frame.held_from) {
      const classifiers = Object.keys(replay.rules).filter((id) => replay.rules[id].kind === "classifier");
      const rules = frame.waiting.length ? [...new Set(frame.waiting)].join(", ")
        : classifiers.join(", ") + " (segment still open)";
      view.append(el("span", { class: "waiting", title: "waiting for the verdict of " + rules },
        el("span", { class: "badge", text: "⏳ " + rules }), source.slice(frame.released, frame.held_from)));
    }
    if (frame.held_from < frame.received) {
      const holders = frame.holders;
      const first = holders.length ? holders[0][0] : "hold";
      view.append(el("span", { class: "held", "data-rule": first,
        title: "held: " + holders.map((h) => h[0] + " from character " + h[1]).join("; ") },
        el("span", { class: "badge", text: first }), source.slice(frame.held_from, frame.received)));
    }
  }
  const held = frame.received - frame.released;
  info.textContent = "Event " + (state.frame + 1) + " of " + replay.frames.length + ": brought " +
    JSON.stringify(frame.chunk) + ", released " + frame.pieces.reduce((n, p) => n + p[2].length, 0) +
    " characters, " + held + " held" + (frame.hits.length ? ", hits: " + frame.hits.map((h) => h.rule).join(", ") : "") +
    (frame.asked.length ? ", verdicts asked: " + frame.asked.join(", ") : "") + ".";
  for (const [i, bar] of [...$("timeline").children].entries()) bar.classList.toggle("now", i === state.frame);
}

function drawTimeline() {
  const frames = state.replay.frames;
  const most = Math.max(1, ...frames.map((f) => f.received - f.released));
  const bars = frames.map((f, i) => {
    const held = f.received - f.released;
    const bar = el("div", { class: "bar" + (held ? "" : " zero"), title: "event " + (i + 1) + ": " + held + " held" });
    bar.style.height = Math.max(1, Math.round((held / most) * 74)) + "px";
    bar.addEventListener("click", () => { stopReplay(); showFrame(i); });
    return bar;
  });
  $("timeline").replaceChildren(...bars);
  $("timeline").setAttribute("aria-label", "most held at once: " + state.replay.shares.max_held + " characters");
}

function drawShares() {
  const shares = state.replay.shares;
  const percent = (x) => (100 * x).toFixed(1) + "%";
  const rows = [el("tr", {}, el("th", { scope: "row", text: "all rules" }),
    el("td", { text: String(shares.released - shares.released_at_once) }),
    el("td", { text: percent(shares.share_at_once) }))];
  for (const rule of shares.rules) {
    rows.push(el("tr", {}, el("td", { text: rule.rule }), el("td", { text: String(rule.held) }),
      el("td", { text: percent(rule.share_at_once) })));
  }
  $("shares").replaceChildren(...rows);
}

function tick() {
  if (!state.replay || state.frame >= state.replay.frames.length - 1) { stopReplay(); return; }
  showFrame(state.frame + 1);
}

$("replay-play").addEventListener("click", async () => {
  if (state.timer) { stopReplay(); return; }
  if (!state.replay) await loadReplay();
  if (!state.replay) return;
  if (state.frame >= state.replay.frames.length - 1) showFrame(-1);
  state.timer = setInterval(tick, Number($("pace").value));
  $("replay-play").textContent = "Pause";
});
$("replay-step").addEventListener("click", () => { stopReplay(); showFrame(state.frame + 1); });
$("replay-back").addEventListener("click", () => { stopReplay(); showFrame(state.frame - 1); });
$("replay-reset").addEventListener("click", loadReplay);
for (const id of ["chunking", "seed", "lag"]) $(id).addEventListener("change", loadReplay);
$("pace").addEventListener("input", () => {
  const ms = $("pace").value + " ms";
  $("pace-value").textContent = ms;
  $("pace").setAttribute("aria-valuetext", ms + " per event");
  if (state.timer) { clearInterval(state.timer); state.timer = setInterval(tick, Number($("pace").value)); }
});

// -- test -----------------------------------------------------------------------------

$("run-tests").addEventListener("click", async () => {
  const status = $("test-status");
  status.textContent = "running…";
  let result;
  try { result = await api("test", { policy: editor.value }); } catch (error) {
    status.textContent = error.message; status.className = "status bad"; return;
  }
  status.textContent = result.passed + " passed, " + result.failed + " failed";
  status.className = result.failed ? "status bad" : "status ok";
  $("cases").replaceChildren(...result.cases.map((c) => el("tr", {},
    el("td", { class: c.passed ? "pass" : "fail", text: c.passed ? "pass" : "FAIL" }),
    el("td", { text: c.where }), el("td", { text: c.case }),
    el("td", { text: c.passed ? "" : "expected " + c.expected + "\ngot " + c.got }))));
});

// -- live -----------------------------------------------------------------------------

async function live() {
  const status = $("live-status");
  let result;
  try { result = await api("live"); } catch (error) { status.textContent = error.message; return; }
  $("live-active").textContent = String(result.active_streams);
  status.textContent = "over the last " + Math.max(1, Math.round(result.window_seconds / 60)) + " minute(s)";
  $("live-rules").replaceChildren(...result.rules.map((r) => el("tr", {},
    el("td", { text: r.policy }), el("td", { text: r.rule }), el("td", { text: r.action }),
    el("td", { text: r.direction }), el("td", { text: String(r.hits) }))));
  const most = Math.max(1, ...result.series.map((s) => s.hits));
  $("live-series").replaceChildren(...result.series.map((s) => {
    const bar = el("div", { class: "bar" + (s.hits ? "" : " zero"), title: s.hits + " hits, " + s.seconds_ago + " s ago" });
    bar.style.height = Math.max(1, Math.round((s.hits / most) * 74)) + "px";
    return bar;
  }));
}
$("live-refresh").addEventListener("click", live);
setInterval(() => { if (current() === "tab-live") live(); }, 5000);

// -- start ----------------------------------------------------------------------------

async function start() {
  let policies, samples;
  try { [policies, samples] = await Promise.all([api("policies"), api("samples")]); } catch (error) {
    if (error.message !== "unauthorized") banner(error.message);
    return;
  }
  const select = $("policy-select");
  select.replaceChildren(...policies.policies.map((p, i) => el("option", { value: String(i), text: p.file })));
  select.onchange = () => { editor.value = policies.policies[Number(select.value)].text; drawGutter(); onEdit(); };
  const samplePick = $("sample-select");
  samplePick.replaceChildren(...samples.samples.map((s, i) => el("option", { value: String(i), text: s.name })));
  samplePick.onchange = () => { $("sample").value = samples.samples[Number(samplePick.value)].text; refreshPanel(); };
  if (!editor.value) editor.value = policies.policies[0].text;
  if (!$("sample").value) $("sample").value = samples.samples[0].text;
  drawGutter();
  if (await check()) refreshPanel();
}

$("api-key").value = state.key;
$("remember-key").checked = Boolean(state.key);
start();
