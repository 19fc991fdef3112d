"""The maintainers' page (GET /ui): paste an issue, see the predicted labels, scores and repo context.

One static HTML document with inline script, no third-party assets. It holds no data: the key
the maintainer types in stays in this tab's sessionStorage and goes, as a Bearer header, with
the one call the page makes (POST /v1/triage), so the page sits behind the same keys as the API.
Text from the server is inserted with textContent only (no HTML injection).
"""

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Issue triage</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #1d232a; }
 label { display: block; margin-top: .8rem; font-weight: 600; }
 input, textarea { width: 100%; box-sizing: border-box; padding: .4rem; font: inherit; }
 textarea { min-height: 9rem; }
 button { margin-top: 1rem; padding: .5rem 1.2rem; font: inherit; }
 #error { color: #a40000; margin-top: 1rem; white-space: pre-wrap; }
 .bar { background: #3a6ea5; height: .8rem; display: inline-block; vertical-align: middle; }
 table { border-collapse: collapse; margin-top: .5rem; }
 td, th { padding: .2rem .8rem; text-align: left; border-bottom: 1px solid #ddd; }
 .label { font-weight: 700; }
</style>
</head>
<body>
<h1>Issue triage</h1>
<p>Paste an issue to see the labels the served model predicts.</p>
<form id="form">
 <label for="key">API key</label>
 <input id="key" type="password" autocomplete="off" required>
 <label for="repo">Repository (owner/name)</label>
 <input id="repo" required placeholder="acme/widgets">
 <label for="title">Title</label>
 <input id="title" required>
 <label for="body">Body</label>
 <textarea id="body"></textarea>
 <button id="submit" type="submit">Predict labels</button>
</form>
<div id="error" role="alert"></div>
<section id="result" hidden>
 <h2>Predicted labels: <span id="labels"></span></h2>
 <table id="scores"><thead><tr><th>label</th><th>score</th><th></th></tr></thead><tbody></tbody></table>
 <h2>Repo context</h2>
 <table id="context"><tbody></tbody></table>
 <p id="model"></p>
</section>
<script>
const $ = (id) => document.getElementById(id);
$("key").value = sessionStorage.getItem("triage-key") || "";
function row(table, cells) {
  const tr = document.createElement("tr");
  for (const c of cells) { const td = document.createElement("td"); if (c instanceof Node) td.appendChild(c); else td.textContent = c; tr.appendChild(td); }
  table.querySelector("tbody").appendChild(tr);
}
$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("error").textContent = ""; $("result").hidden = true;
  sessionStorage.setItem("triage-key", $("key").value);
  let resp;
  try {
    resp = await fetch("/v1/triage", {method: "POST",
      headers: {"Authorization": "Bearer " + $("key").value, "Content-Type": "application/json"},
      body: JSON.stringify({repo: $("repo").value, title: $("title").value, body: $("body").value})});
  } catch (e) { $("error").textContent = "request failed: " + e; return; }
  const data = await resp.json().catch(() => ({error: "HTTP " + resp.status}));
  if (!resp.ok) { $("error").textContent = "HTTP " + resp.status + ": " + (data.error || ""); return; }
  $("labels").textContent = data.labels.join(", ");
  for (const t of ["scores", "context"]) $(t).querySelector("tbody").replaceChildren();
  const ranked = Object.entries(data.scores).sort((a, b) => b[1] - a[1]);
  for (const [label, p] of ranked) {
    const bar = document.createElement("span"); bar.className = "bar"; bar.style.width = (p * 12) + "rem";
    row($("scores"), [label, p.toFixed(3), bar]);
    $("scores").querySelector("tbody").lastChild.dataset.label = label;
  }
  const ctx = Object.entries(data.context || {});
  if (!ctx.length) row($("context"), ["(no repo features found for " + data.repo + ")", ""]);
  for (const [k, v] of ctx) row($("context"), [k, String(v)]);
  $("model").textContent = "model: " + data.model.model_uri + (data.model.source ? " (" + data.model.source + ")" : "");
  $("result").hidden = false;
});
</script>
</body>
</html>
"""
