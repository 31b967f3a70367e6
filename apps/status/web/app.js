// jobrelay's web page: submit a job to intake, follow it on status (this page's own origin).
// Plain ES module, no build step. Everything the server sends is put in the page with
// textContent, never innerHTML, so a job's text or result cannot inject markup.

const TERMINAL = new Set(["succeeded", "failed", "cancelled", "expired"]);
const INTAKE_KEY = "jobrelay.intake";
// The API key lives in sessionStorage, not localStorage: it is gone when the tab closes, so
// a shared machine does not keep it, and a person types it once per visit at most.
const API_KEY_KEY = "jobrelay.apiKey";

const $ = (id) => document.getElementById(id);
// `trusted`: the origins that may receive the API key, this page's own and the intake that
// the status app serves in config.json. Nothing else does, whatever URL the page was given.
const state = {
  intake: "", trusted: new Set([location.origin]), watch: null, job: null, streamed: "",
};

// ---- connection --------------------------------------------------------------------------

function originOf(url) {
  try { return new URL(url, location.href).origin; } catch { return null; }
}

async function loadConnection() {
  // ?intake= wins (a link can point the page at another intake), then what the person
  // saved, then what the status app says (its JOBRELAY_STATUS_INTAKE_PUBLIC_URL). Only the
  // last one is trusted with the key: a link must not be able to collect it.
  const fromQuery = new URLSearchParams(location.search).get("intake");
  let fromServer = "";
  try {
    const resp = await fetch("config.json");
    if (resp.ok) fromServer = (await resp.json()).intake_url || "";
  } catch { /* the defaults below still let the page work */ }
  if (originOf(fromServer)) state.trusted.add(originOf(fromServer));
  state.intake = (fromQuery || localStorage.getItem(INTAKE_KEY) || fromServer
    || `${location.protocol}//${location.hostname}:8000`).replace(/\/+$/, "");
  $("intake-url").value = state.intake;
  $("api-key").value = sessionStorage.getItem(API_KEY_KEY) || "";
  showTrust();
}

function saveConnection(event) {
  event.preventDefault();
  state.intake = $("intake-url").value.trim().replace(/\/+$/, "");
  localStorage.setItem(INTAKE_KEY, state.intake);
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(API_KEY_KEY, key); else sessionStorage.removeItem(API_KEY_KEY);
  $("settings").open = false;
  showTrust();
  loadRecent();
}

function showTrust() {
  // Said where the person looks, so a missing key on another intake is no mystery.
  const untrusted = !state.trusted.has(originOf(state.intake));
  $("intake-untrusted").hidden = !untrusted;
  $("intake-untrusted-origin").textContent = originOf(state.intake) || state.intake;
}

function authHeaders(url) {
  // Bearer carries an API key and an OIDC token alike, whichever the server turns on; only
  // to a trusted origin (see `state.trusted`).
  const key = sessionStorage.getItem(API_KEY_KEY);
  return key && state.trusted.has(originOf(url)) ? { Authorization: `Bearer ${key}` } : {};
}

// ---- errors ------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function apiError(resp) {
  // Every jobrelay error is {"error": {"code", "message"}}; anything else (a proxy's page)
  // is reported by its HTTP status.
  try {
    const body = await resp.json();
    if (body && body.error) return new ApiError(resp.status, body.error.code, body.error.message);
  } catch { /* not JSON */ }
  return new ApiError(resp.status, `http_${resp.status}`, resp.statusText || "request failed");
}

function showError(element, error, where) {
  element.replaceChildren();
  if (error instanceof ApiError) {
    const code = document.createElement("code");
    code.textContent = error.code;
    element.append(code, `: ${error.message}`);
    if (error.status === 401 || error.status === 403) {
      element.append(" Set an API key under Connection.");
    }
  } else {
    element.textContent = `Could not reach ${where}: ${error.message}. Is it running, and does `
      + "it allow this page's origin (JOBRELAY_INTAKE_CORS_ORIGINS)?";
  }
  element.hidden = false;
}

// ---- submit ------------------------------------------------------------------------------

function selectedTask() { return $("task").value; }

function showTaskFields() {
  for (const fieldset of document.querySelectorAll("fieldset.params")) {
    fieldset.hidden = fieldset.dataset.task !== selectedTask();
  }
  // An image task takes only files; switch the input over so the person is not left guessing.
  if (["describe_image", "read_document"].includes(selectedTask())) setSource("file");
}

function setSource(source) {
  document.querySelector(`input[name=source][value=${source}]`).checked = true;
  $("text").hidden = source !== "text";
  $("file").hidden = source !== "file";
}

function taskParams(task) {
  const params = {};
  if (task === "classify") {
    params.labels = $("labels").value.split(",").map((l) => l.trim()).filter(Boolean);
    if ($("multi-label").checked) params.multi_label = true;
  } else if (task === "summarize") {
    params.max_words = Number($("max-words").value) || 60;
    if ($("focus").value.trim()) params.focus = $("focus").value.trim();
  } else if (task === "extract") {
    params.schema = parseJson($("schema").value, "the JSON Schema");
    if ($("instructions").value.trim()) params.instructions = $("instructions").value.trim();
  } else if (task === "describe_image") {
    params.prompt = $("prompt").value.trim();
  } else if (task === "read_document") {
    if ($("doc-summary").checked) params.summary = true;
  }
  const extra = $("params-json").value.trim();
  return extra ? { ...params, ...parseJson(extra, "the parameters") } : params;
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiError(0, "invalid_json", `${what} is not valid JSON (${error.message})`);
  }
}

function submitRequest(task, params) {
  const source = document.querySelector("input[name=source]:checked").value;
  const deadline = Number($("deadline").value) || null;
  if (source === "file") {
    const file = $("file").files[0];
    if (!file) throw new ApiError(0, "file_required", "choose a file to upload");
    const form = new FormData();
    form.append("task", task);
    form.append("params", JSON.stringify(params));
    if (deadline) form.append("deadline_seconds", String(deadline));
    form.append("file", file);
    return { body: form, headers: {}, summary: file.name };
  }
  const text = $("text").value;
  if (!text.trim()) throw new ApiError(0, "input_required", "type or paste some text first");
  const body = { task, input: { text }, params };
  if (deadline) body.deadline_seconds = deadline;
  return {
    body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" },
    summary: text.trim().slice(0, 80),
  };
}

async function submitJob(event) {
  event.preventDefault();
  const error = $("form-error");
  error.hidden = true;
  let request;
  try {
    request = submitRequest(selectedTask(), taskParams(selectedTask()));
  } catch (problem) {
    showError(error, problem, "the page");
    return;
  }
  $("submit").disabled = true;
  try {
    const url = `${state.intake}/v1/jobs`;
    const resp = await fetch(url, {
      method: "POST",
      headers: { ...authHeaders(url), ...request.headers },
      body: request.body,
    });
    if (!resp.ok) throw await apiError(resp);
    const job = await resp.json();
    remember();
    watch(job);
  } catch (problem) {
    showError(error, problem, `intake at ${state.intake}`);
  } finally {
    $("submit").disabled = false;
  }
}

// ---- follow a job: the event stream first, polling with Retry-After after ------------------

function watch(job) {
  if (state.watch) state.watch.abort();
  const controller = new AbortController();
  state.watch = controller;
  state.streamed = ""; // another job's text is not this one's
  render(job, "");
  if (TERMINAL.has(job.status)) return;
  follow(job, controller.signal).catch((problem) => {
    if (!controller.signal.aborted) showError($("job-error"), problem, "status");
  });
}

async function follow(job, signal) {
  let last = job;
  // A chat or summarize job's text, as its `delta` events bring it; the stream resumes
  // after the last event seen (Last-Event-ID), so a dropped connection loses no text.
  const stream = { lastId: null, text: "" };
  state.streamed = "";
  for (let tries = 0; tries < 3 && !TERMINAL.has(last.status) && !signal.aborted; tries++) {
    try {
      last = await streamEvents(job.id, signal, stream) ?? last;
    } catch (problem) {
      if (signal.aborted) return;
      console.info("event stream interrupted:", problem);
      if (stream.lastId === null) break; // nothing to resume after: poll instead
    }
  }
  if (!TERMINAL.has(last.status) && !signal.aborted) await poll(last, signal);
}

async function streamEvents(jobId, signal, stream) {
  // fetch, not EventSource: EventSource cannot send an Authorization header, and the page
  // must keep working once the API requires a key.
  const headers = { ...authHeaders(location.href), Accept: "text/event-stream" };
  if (stream.lastId !== null) headers["Last-Event-ID"] = stream.lastId;
  const resp = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/events`, { headers, signal });
  if (!resp.ok) throw await apiError(resp);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let last = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = sseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event.data === null) continue; // a keep-alive comment
      if (event.id !== null) stream.lastId = event.id;
      if (event.name === "delta") {
        stream.text += JSON.parse(event.data).text;
        showStreamed(stream.text);
        continue;
      }
      last = JSON.parse(event.data);
      // A new attempt (`running` again after a retry) streams its text afresh.
      if (last.status === "running") stream.text = "";
      state.streamed = stream.text;
      render(last, "live events");
      if (TERMINAL.has(last.status)) return last;
    }
  }
  if (!last && stream.lastId === null) throw new Error("the stream ended before any event");
  return last;
}

function sseEvent(block) {
  const field = (name) => block.split("\n").filter((line) => line.startsWith(`${name}:`))
    .map((line) => line.slice(name.length + 1).replace(/^ /, ""));
  const data = field("data");
  return { name: field("event")[0] ?? null, id: field("id")[0] ?? null,
    data: data.length ? data.join("\n") : null };
}

function showStreamed(text) {
  state.streamed = text;
  let node = $("streamed");
  if (!node) {
    node = el("p", "", "text-result streaming");
    node.id = "streamed";
    node.dataset.testid = "streamed";
    $("result").replaceChildren(node);
  }
  node.textContent = text;
}

async function poll(job, signal) {
  let wait = 0;
  for (;;) {
    if (wait) await sleep(wait, signal);
    const resp = await fetch(`/v1/jobs/${encodeURIComponent(job.id)}`, {
      headers: authHeaders(location.href),
      signal,
    });
    if (resp.status !== 200 && resp.status !== 202) throw await apiError(resp);
    const current = await resp.json();
    render(current, "polling");
    if (resp.status === 200) return;
    // Honour Retry-After, clamped so a bad header neither spins nor stalls the page.
    const after = Number(resp.headers.get("Retry-After"));
    wait = Math.min(Math.max(Number.isFinite(after) && after > 0 ? after : 1, 0.5), 30) * 1000;
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); });
  });
}

// ---- render ------------------------------------------------------------------------------

function render(job, via) {
  state.job = job;
  $("job").hidden = false;
  $("job").dataset.status = job.status;
  $("job-id").textContent = job.id;
  renderSteps(job.status);
  const parts = [`${job.task}`, `attempt ${job.attempts}`];
  if (job.result) parts.push(`model ${job.result.model}`);
  if (via) parts.push(`updates: ${via}`);
  $("job-meta").textContent = parts.join(" · ");
  $("cancel").hidden = TERMINAL.has(job.status);
  const result = $("result");
  if (job.result) {
    result.replaceChildren(...renderOutput(job.task, job.result.output));
  } else if (job.status === "running" && state.streamed) {
    showStreamed(state.streamed); // the text so far, until the result replaces it
  } else {
    result.replaceChildren();
  }
  const error = $("job-error");
  if (job.error && job.status !== "succeeded") {
    showError(error, new ApiError(0, job.error.code, job.error.message), "");
  } else if (job.status === "cancelled" || job.status === "expired") {
    error.textContent = `The job was ${job.status}.`;
    error.hidden = false;
  } else {
    error.hidden = true;
  }
  updateRecent(job);
}

function renderSteps(status) {
  const order = ["queued", "running", "final"];
  const at = TERMINAL.has(status) ? 2 : order.indexOf(status);
  for (const item of $("steps").children) {
    const index = order.indexOf(item.dataset.step);
    item.className = index < at ? "done" : index === at ? (TERMINAL.has(status) ? status : "now") : "";
    if (item.dataset.step === "final") item.textContent = TERMINAL.has(status) ? status : "done";
  }
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function renderOutput(task, output) {
  if (output.scores && typeof output.scores === "object") return renderScores(output);
  if (Array.isArray(output.embedding)) {
    const preview = output.embedding.slice(0, 6).map((x) => x.toFixed(4)).join(", ");
    return [el("p", `${output.dimensions ?? output.embedding.length} dimensions`, "winner"),
      el("pre", `[${preview}, …]`)];
  }
  if (task === "extract" && "data" in output) {
    const parts = [el("p", "Extracted JSON", "hint"), el("pre", JSON.stringify(output.data, null, 2))];
    if (output.unsupported?.length) {
      parts.push(el("p", `Not found in the text (the model's guess): ${output.unsupported.join(", ")}`, "hint"));
    }
    return parts;
  }
  if (typeof output.markdown === "string") return [el("pre", output.markdown, "text-result")];
  for (const field of ["summary", "description"]) {
    if (typeof output[field] === "string") return [el("p", output[field], "text-result")];
  }
  if (output.message && typeof output.message.content === "string") {
    return [el("p", output.message.content, "text-result")];
  }
  return [el("pre", JSON.stringify(output, null, 2))];
}

function renderScores(output) {
  const chosen = new Set(output.labels || [output.label]);
  const entries = Object.entries(output.scores).sort((a, b) => b[1] - a[1]);
  // Multi-label scores are standard deviations, not probabilities: bars scale to the top one.
  const top = Math.max(...entries.map(([, s]) => Math.abs(s)), 1e-9);
  const winner = el("p", "", "winner");
  const strong = el("strong", [...chosen].join(", "));
  strong.dataset.testid = "label";
  winner.append(chosen.size > 1 ? "Labels: " : "Label: ", strong);
  const grid = el("div", undefined, "scores");
  for (const [label, score] of entries) {
    const isChosen = chosen.has(label);
    const bar = el("div", undefined, isChosen ? "bar chosen" : "bar");
    bar.style.width = `${Math.max((Math.abs(score) / top) * 100, 2)}%`;
    const track = el("div");
    track.append(bar);
    grid.append(el("span", label, isChosen ? "chosen" : ""), track, el("span", score.toFixed(3)));
  }
  return [winner, grid];
}

// ---- your jobs (GET /v1/jobs: the listing, newest first) ----------------------------------

const RECENT_PAGE = 20;
// `jobs`: what is shown; `next`: the listing's next page URL (null at the end).
const recent = { jobs: [], next: null };

function summaryOf(job) {
  if (job.input && job.input.text) return job.input.text.trim().slice(0, 80);
  if (job.input && job.input.filename) return job.input.filename;
  return job.id;
}

async function loadRecent(more = false) {
  // Always this page's own origin (status), whatever public URL `next` names: the key goes
  // where every status call of the page sends it, and no CORS is involved.
  let url = `/v1/jobs?limit=${RECENT_PAGE}`;
  if (more && recent.next) {
    const next = new URL(recent.next, location.href);
    url = next.pathname + next.search;
  }
  try {
    const resp = await fetch(url, { headers: authHeaders(location.href) });
    if (!resp.ok) throw await apiError(resp);
    const page = await resp.json();
    recent.jobs = more ? [...recent.jobs, ...page.results] : page.results;
    recent.next = page.next;
    $("recent-error").hidden = true;
  } catch (problem) {
    showError($("recent-error"), problem, "status");
  }
  renderRecent();
}

function remember() {
  loadRecent();
}

function updateRecent(job) {
  const shown = recent.jobs.find((j) => j.id === job.id);
  if (shown && shown.status !== job.status) {
    shown.status = job.status;
    renderRecent();
  }
}

function renderRecent() {
  const items = recent.jobs.map((job) => {
    const button = el("button");
    button.type = "button";
    const head = el("span");
    head.append(el("span", job.status, `badge ${job.status}`), ` ${job.task}`);
    button.append(head, el("span", summaryOf(job), "what"));
    button.addEventListener("click", () => openJob(job.id));
    const item = el("li");
    item.dataset.jobId = job.id;
    item.append(button);
    return item;
  });
  $("recent").replaceChildren(...items);
  if (!items.length) $("recent").append(el("li", "None yet.", "hint"));
  $("recent-more").hidden = !recent.next;
}

async function openJob(jobId) {
  $("job-error").hidden = true;
  try {
    const resp = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}`, {
      headers: authHeaders(location.href),
    });
    if (resp.status !== 200 && resp.status !== 202) throw await apiError(resp);
    watch(await resp.json());
  } catch (problem) {
    $("job").hidden = false;
    showError($("job-error"), problem, "status");
  }
}

async function cancelJob() {
  if (!state.job) return;
  try {
    const resp = await fetch(`/v1/jobs/${encodeURIComponent(state.job.id)}`, {
      method: "DELETE",
      headers: authHeaders(location.href),
    });
    if (!resp.ok) throw await apiError(resp);
    watch(await resp.json());
  } catch (problem) {
    showError($("job-error"), problem, "status");
  }
}

// ---- start -------------------------------------------------------------------------------

async function start() {
  await loadConnection();
  $("settings-form").addEventListener("submit", saveConnection);
  $("submit-form").addEventListener("submit", submitJob);
  $("task").addEventListener("change", showTaskFields);
  for (const radio of document.querySelectorAll("input[name=source]")) {
    radio.addEventListener("change", () => setSource(radio.value));
  }
  $("cancel").addEventListener("click", cancelJob);
  $("recent-more").addEventListener("click", () => loadRecent(true));
  showTaskFields();
  loadRecent();
  document.body.dataset.ready = "true";
}

start();
