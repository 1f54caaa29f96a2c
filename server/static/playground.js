// The mucode playground: draws the µCode search live from the public API (streamed POST
// /v1/solve, POST /v1/execute). No framework, no CDN: it must work offline and behind firewalls.
// Everything from the server or the user is inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "mucode-api-key";
const state = { controller: null, trace: null, turns: 0 };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// --- Python syntax highlighting (strings, comments, keywords, numbers, names after def/class) ---
const KEYWORDS = new Set(("False None True and as assert async await break class continue def del elif else except " +
  "finally for from global if import in is lambda nonlocal not or pass raise return try while with yield").split(" "));
const TOKEN = /("""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?)|(#[^\n]*)|\b(\d+(?:\.\d+)?)\b|\b([A-Za-z_]\w*)\b/g;

function highlight(code) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  let previousWord = "";
  for (const match of code.matchAll(TOKEN)) {
    if (match.index > last) fragment.append(code.slice(last, match.index));
    const [text, string, comment, number, word] = match;
    let kind = null;
    if (string) kind = "str";
    else if (comment) kind = "com";
    else if (number) kind = "num";
    else if (word && KEYWORDS.has(word)) kind = "kw";
    else if (word && (previousWord === "def" || previousWord === "class")) kind = "fn";
    if (word) previousWord = word;
    fragment.append(kind ? el("span", { className: kind, text }) : text);
    last = match.index + text.length;
  }
  fragment.append(code.slice(last));
  return fragment;
}

function codeBlock(code) {
  return el("pre", { className: "code" }, el("code", {}, highlight(code)));
}

// --- talking to the server ---
function headers() {
  const result = { "content-type": "application/json" };
  const key = localStorage.getItem(KEY_STORAGE);
  if (key) result.authorization = "Bearer " + key;
  return result;
}

async function errorMessage(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) message = `${response.status}: ${body.error.message}`;
  } catch (_) { /* not JSON: keep the status line */ }
  if (response.status === 401) showKeyBox();
  return message;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(text) { $("status").textContent = text; }

function showKeyBox() {
  $("key-box").hidden = false;
  $("api-key").focus();
}

// Tests: a JSON list of {"input", "output"} pairs, or Python asserts (indented lines continue one).
function parseTests(text) {
  const trimmed = text.trim();
  if (!trimmed) return { tests: [], io_tests: [] };
  if (trimmed.startsWith("[")) {
    let pairs;
    try { pairs = JSON.parse(trimmed); } catch (err) { throw new Error("stdin/stdout tests are not valid JSON: " + err.message); }
    if (!Array.isArray(pairs)) throw new Error('stdin/stdout tests must be a JSON list of {"input": ..., "output": ...}');
    return { tests: [], io_tests: pairs };
  }
  const tests = [];
  for (const line of text.split("\n")) {
    if (!line.trim() || line.trim().startsWith("#")) continue;
    if (/^\s/.test(line) && tests.length) tests[tests.length - 1] += "\n" + line;
    else tests.push(line);
  }
  return { tests, io_tests: [] };
}

function numberOf(id) {
  const value = Number($(id).value);
  if (!Number.isFinite(value)) throw new Error(`${id.replace("opt-", "")} must be a number`);
  return value;
}

// --- Server-Sent Events over fetch (EventSource cannot POST) ---
async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      yield { event, data: data ? JSON.parse(data) : null };
    }
  }
}

// --- drawing the search ---
function turnColumn(turn, turns) {
  const column = el("section", { className: "turn", id: `turn-${turn}`, "aria-label": `Turn ${turn}` },
    el("h3", { text: `Turn ${turn} / ${turns}` }));
  if (turn > 1) {
    const from = document.querySelector(`#turn-${turn - 1} .candidate.selected`);
    const link = el("a", { href: from ? "#" + from.id : "#", className: "prompt-link",
      text: `prompt: the problem + turn ${turn - 1}'s chosen code and its feedback` });
    column.append(link);
  }
  column.append(el("p", { className: "sampling" }, document.createTextNode("sampling candidates…")));
  $("search").append(column);
  column.scrollIntoView({ block: "nearest", inline: "end" });
  return column;
}

// Live progress of a turn that is still running: what the search is doing, then each program's
// public-test result as it lands (the candidate cards replace it when the turn ends).
function progress(turn, text, append = false) {
  const line = document.querySelector(`#turn-${turn} .sampling`);
  if (!line) return;
  if (append) line.append(el("span", { className: "ran", text: text }));
  else line.firstChild.textContent = text;
}

function testList(execution) {
  if (!execution) return el("p", { className: "muted", text: "not run" });
  const list = el("ul", { className: "tests" });
  for (const result of execution.results) {
    const ok = result.status === "passed";
    list.append(el("li", { className: ok ? "pass" : "fail" },
      el("span", { className: "mark", "aria-label": ok ? "passed" : result.status, text: ok ? "✓" : "✗" }),
      el("code", { text: result.test }),
      result.message ? el("div", { className: "message", text: result.message }) : null));
  }
  return list;
}

function candidateCard(record, candidate, total, isLastTurn) {
  const selected = candidate.index === record.selected;
  const passed = candidate.execution ? candidate.execution.passed_count : 0;
  const badges = [
    el("span", { className: `badge ${passed === total && candidate.code ? "ok" : "bad"}`, text: `passes ${passed}/${total}` }),
  ];
  if (candidate.verifier_score !== null && candidate.verifier_score !== undefined) {
    badges.push(el("span", { className: "badge", text: `verifier ${candidate.verifier_score.toFixed(2)}` }));
  }
  if (candidate.duplicate_of !== null && candidate.duplicate_of !== undefined) {
    badges.push(el("span", { className: "badge dup", text: `same code as #${candidate.duplicate_of + 1}` }));
  }
  if (candidate.refill) badges.push(el("span", { className: "badge", text: "fresh sample in place of a repeat" }));
  if (candidate.repeat_of_turn !== null && candidate.repeat_of_turn !== undefined) {
    badges.push(el("span", { className: "badge dup", text: `repeats turn ${candidate.repeat_of_turn}, not rerun` }));
  }
  if (candidate.extraction !== "fenced") badges.push(el("span", { className: "badge", text: candidate.extraction }));
  if (selected) badges.push(el("span", { className: "badge chosen", text: "chosen" }));

  const card = el("article", { className: "candidate" + (selected ? " selected" : ""),
    id: `t${record.turn}-c${candidate.index}`, tabindex: "-1" },
    el("header", {}, el("strong", { text: `#${candidate.index + 1}` }), badges));
  const body = candidate.code ? codeBlock(candidate.code) : el("pre", { className: "code", text: candidate.text || "(empty answer)" });
  card.append(el("details", { open: selected }, el("summary", { text: candidate.code ? "code" : "answer (no code found)" }), body));
  card.append(testList(candidate.execution));
  if (selected && !isLastTurn && candidate.execution) {
    card.append(el("details", { className: "feedback" },
      el("summary", { text: `feedback sent to turn ${record.turn + 1}` }),
      el("pre", { text: candidate.execution.feedback })));
  }
  return card;
}

function drawTurn(record, total) {
  const column = $(`turn-${record.turn}`) || turnColumn(record.turn, state.turns);
  column.querySelector(".sampling")?.remove();
  const chosen = record.candidates[record.selected];
  const isLast = record.turn === state.turns || (chosen.execution && chosen.execution.passed && chosen.code);
  for (const candidate of record.candidates) column.append(candidateCard(record, candidate, total, isLast));
  const t = record.timings;
  column.append(el("p", { className: "muted",
    text: `${record.usage.completion_tokens} tokens · generation ${ms(t.generation_ms)} · sandbox ${ms(t.sandbox_ms)} · verifier ${ms(t.verifier_ms)}` }));
}

function ms(value) { return value >= 1000 ? (value / 1000).toFixed(1) + " s" : Math.round(value) + " ms"; }

function drawResult(result) {
  state.trace = result;
  $("final").hidden = false;
  const agreement = result.turns[result.turns.length - 1].agreement;
  const untested = result.stop_reason === "no_tests";
  $("verdict").textContent = (untested
    ? (agreement ? agreement.summary.charAt(0).toUpperCase() + agreement.summary.slice(1) : "No tests given: nothing was run to check the answer")
    : (result.public_all_passed ? "Passed" : "Failed") + ` ${result.public_passed_count}/${result.public_total} public tests`) +
    ` after ${result.turns.length} turn(s)` + (result.cached ? " (from the cache)" : "") + `; stop: ${result.stop_reason}.`;
  $("verdict").className = "verdict " + (result.public_all_passed ? "ok" : untested ? "unchecked" : "bad");
  $("final-code").replaceChildren(highlight(result.final_code || "(no code)"));
  const u = result.usage, t = result.timings;
  const rows = [
    ["tokens", `${u.prompt_tokens} prompt + ${u.completion_tokens} completion = ${u.total_tokens}`],
    ["generation", ms(t.generation_ms)], ["sandbox", ms(t.sandbox_ms)], ["verifier", ms(t.verifier_ms)],
    ["agreement", ms(t.agreement_ms)],
    ["total", ms(t.total_ms)], ["generator", result.generator], ["verifier model", result.verifier],
  ];
  $("totals").replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: v }))));
}

// --- actions ---
async function run(event) {
  event.preventDefault();
  if (state.controller) return;
  showError("");
  let body;
  try {
    const { tests, io_tests } = parseTests($("tests").value);
    body = {
      prompt: $("problem").value, tests, io_tests, stream: true,
      options: { n: numberOf("opt-n"), turns: numberOf("opt-turns"), selection: $("opt-selection").value,
                 temperature: numberOf("opt-temperature"), seed: numberOf("opt-seed") },
    };
  } catch (err) { showError(err.message); return; }
  $("search").replaceChildren();
  $("final").hidden = true;
  state.trace = null;
  state.turns = body.options.turns;
  const total = body.tests.length + body.io_tests.length;
  state.controller = new AbortController();
  $("run").disabled = true;
  $("cancel").disabled = false;
  setStatus("running…");
  try {
    const response = await fetch("/v1/solve", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: state.controller.signal });
    if (!response.ok) throw new Error(await errorMessage(response));
    for await (const { event, data } of readEvents(response)) {
      if (event === "turn_started") { state.turns = data.turns; turnColumn(data.turn, data.turns); }
      else if (event === "generating") progress(data.turn,
        `writing ${data.tokens.length} candidate${data.tokens.length === 1 ? "" : "s"}: ${data.tokens.map((t, k) => `#${k + 1} ${t}`).join(", ")} tokens…`);
      else if (event === "candidates_written") progress(data.turn,
        `${data.candidates} candidates written; testing ${data.programs} distinct program${data.programs === 1 ? "" : "s"}…`);
      else if (event === "candidate_ran") progress(data.turn, `#${data.candidate + 1}: passes ${data.passed}/${data.total}`, true);
      else if (event === "turn_finished") drawTurn(data, total);
      else if (event === "result") { drawResult(data); setStatus("done"); }
      else if (event === "error") throw new Error(data.error.message);
    }
    if (!state.trace) throw new Error("the stream ended without a result");
  } catch (err) {
    if (err.name === "AbortError") setStatus("cancelled");
    else { showError(err.message || String(err)); setStatus("failed"); }
  } finally {
    state.controller = null;
    $("run").disabled = false;
    $("cancel").disabled = true;
  }
}

function cancel() {
  if (state.controller) state.controller.abort();  // closing the stream cancels the search server-side
}

async function execute(event) {
  event.preventDefault();
  showError("");
  let body;
  try {
    const { tests, io_tests } = parseTests($("exec-tests").value);
    body = { code: $("exec-code").value, tests, io_tests };
  } catch (err) { showError(err.message); return; }
  $("execute").disabled = true;
  try {
    const response = await fetch("/v1/execute", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!response.ok) throw new Error(await errorMessage(response));
    const result = await response.json();
    $("exec-result").replaceChildren(
      el("p", { className: "verdict " + (result.passed ? "ok" : "bad"),
        text: `${result.passed ? "Passed" : "Failed"}: ${result.passed_count}/${result.results.length} tests, ${ms(result.duration_ms)} (${result.isolation})` }),
      testList(result),
      el("h3", { text: "Feedback" }), el("pre", { text: result.feedback }),
      result.stdout ? el("details", {}, el("summary", { text: "stdout" }), el("pre", { text: result.stdout })) : null,
      result.stderr ? el("details", {}, el("summary", { text: "stderr" }), el("pre", { text: result.stderr })) : null);
  } catch (err) {
    showError(err.message || String(err));
  } finally {
    $("execute").disabled = false;
  }
}

function selectTab(name) {
  for (const tab of ["solve", "execute"]) {
    const on = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(on));
    $(`tab-${tab}`).tabIndex = on ? 0 : -1;
    $(`panel-${tab}`).hidden = !on;
  }
}

function download() {
  if (!state.trace) return;
  const blob = new Blob([JSON.stringify(state.trace, null, 2)], { type: "application/json" });
  const link = el("a", { href: URL.createObjectURL(blob), download: `mucode-trace-${state.trace.problem_id}.json` });
  document.body.append(link);
  link.click();
  link.remove();
}

async function copy() {
  const code = state.trace && state.trace.final_code;
  if (!code) return;
  try {
    await navigator.clipboard.writeText(code);
    setStatus("code copied");
  } catch (_) {
    showError("the browser refused clipboard access; select the code and copy it by hand");
  }
}

async function checkServer() {
  try {
    const response = await fetch("/v1/models", { headers: headers() });
    if (response.status === 401) showKeyBox();
    const health = await (await fetch("/health")).json();
    setStatus(`server ${health.status} · ${health.generator.backend} · verifier ${health.generator.verifier}`);
  } catch (err) {
    showError("cannot reach the server: " + err.message);
  }
}

$("solve-form").addEventListener("submit", run);
$("cancel").addEventListener("click", cancel);
$("execute-form").addEventListener("submit", execute);
$("download").addEventListener("click", download);
$("copy").addEventListener("click", copy);
$("save-key").addEventListener("click", () => {
  localStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
  $("key-box").hidden = true;
  showError("");
  checkServer();
});
for (const tab of ["solve", "execute"]) {
  $(`tab-${tab}`).addEventListener("click", () => selectTab(tab));
  $(`tab-${tab}`).addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const next = tab === "solve" ? "execute" : "solve";
      selectTab(next);
      $(`tab-${next}`).focus();
    }
  });
}
document.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    const form = $("panel-solve").hidden ? $("execute-form") : $("solve-form");
    form.requestSubmit();
  } else if (e.key === "Escape") cancel();
});
checkServer();
