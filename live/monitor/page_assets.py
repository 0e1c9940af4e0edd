"""The page's fixed parts: its style, its refresh script and its frame.

All inline, so the page loads nothing but ``/dashboard.json`` from the daemon; the
``Content-Security-Policy`` of :data:`CSP` makes the browser refuse anything else.
"""

from __future__ import annotations

#: Inline style and script only, requests back to this server only, no framing.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'none'")

#: Seconds between two refreshes of the page's panels.
REFRESH_S = 5

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#24292f;
background:#f6f8fa}
header{background:#24292f;color:#fff;padding:10px 20px;display:flex;gap:16px;
align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}
#refresh{margin-left:auto;font-size:12px;color:#d0d7de}
main{padding:12px 20px;display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));
gap:12px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;
overflow-x:auto}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{background:#f6f8fa;font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}
dt{color:#57606a}dd{margin:0;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;color:#fff}
.running{background:#1a7f37}.stopped{background:#57606a}.finished{background:#0969da}
.failed{background:#cf222e}.unknown{background:#bf8700}
.bad{color:#cf222e;font-weight:600}.good{color:#1a7f37}.muted{color:#57606a}
svg{max-width:100%;height:auto}
"""

SCRIPT = """
(function () {
  var every = %(refresh_ms)d, charts = document.body.dataset.charts || "";
  var note = document.getElementById("refresh");
  function stamp() { return new Date().toLocaleTimeString(); }
  function refresh() {
    fetch("dashboard.json?charts=" + encodeURIComponent(charts),
          {cache: "no-store", credentials: "same-origin"})
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (body) {
        Object.keys(body.fragments).forEach(function (id) {
          var el = document.getElementById(id);
          if (el && el.innerHTML !== body.fragments[id]) { el.innerHTML = body.fragments[id]; }
        });
        charts = body.charts_version;
        note.textContent = "refreshed " + stamp();
        note.className = "";
      })
      .catch(function (err) {
        note.textContent = "cannot reach the daemon (" + err.message + "), showing " +
                           "what it said last; retrying";
        note.className = "bad";
      });
  }
  setInterval(refresh, every);
})();
"""

FRAME = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>ensemble-bt paper: %(title)s</title><style>%(style)s</style></head>
<body data-charts="%(charts_version)s">
<header><h1>ensemble-bt paper</h1><span id="title">%(title)s</span>
<span id="refresh" class="muted">refreshes every %(refresh_s)d s</span></header>
<main>
<section id="summary">%(summary)s</section>
<section id="account">%(account)s</section>
<section id="charts" class="wide">%(charts)s</section>
<section id="positions" class="wide">%(positions)s</section>
<section id="latency">%(latency)s</section>
<section id="retrain">%(retrain)s</section>
<section id="decisions" class="wide">%(decisions)s</section>
<section id="orders" class="wide">%(orders)s</section>
</main>
<script>%(script)s</script>
</body></html>
"""

#: The panels the page is made of, by element id; each is refreshed on its own.
PANELS = ("summary", "account", "charts", "positions", "latency", "retrain", "decisions",
          "orders")
