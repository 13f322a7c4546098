/* The transcript browser. Data comes from the JSON block and reaches the page through
   textContent and DOM nodes only: transcript text is never parsed as HTML. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var transcripts = data.transcripts;
  var PAGE_SIZE = 20;
  var state = { criterion: "", outcome: "", query: "", page: 0 };
  var byId = function (id) { return document.getElementById(id); };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function clone(id) {
    return byId(id).content.firstElementChild.cloneNode(true);
  }

  function setField(root, name, value) {
    var nodes = root.querySelectorAll('[data-field="' + name + '"]');
    for (var i = 0; i < nodes.length; i++) {
      if (value === undefined || value === null || value === "") {
        nodes[i].hidden = true;
      } else {
        nodes[i].textContent = String(value);
      }
    }
  }

  function slot(root, name) {
    return root.querySelector('[data-slot="' + name + '"]');
  }

  function fmt(x, digits) {
    return (x === null || x === undefined) ? "–" : Number(x).toFixed(digits);
  }

  /* Reviewer marks: each verdict and decision can be marked right or wrong (an error or a
     skipped verdict: should pass / should fail), with a note. Marks live in memory and, when
     the browser allows it, in localStorage under this run's key; "export labels" downloads
     them as the labels JSONL that `harness calibrate` reads (a label is the right outcome). */
  var MARKS_KEY = "harness-marks:" + data.run.dir + "|" + (data.run.started || "");
  var marks = loadMarks();
  var markViews = [];

  function loadMarks() {
    try {
      var stored = JSON.parse(window.localStorage.getItem(MARKS_KEY) || "{}");
      return (stored && typeof stored === "object" && !Array.isArray(stored)) ? stored : {};
    } catch (e) {
      return {};
    }
  }

  function markKey(tid, criterion, index) {
    return JSON.stringify([tid, criterion, index]);
  }

  function labelOf(m) {
    if (m.mark === "right") { return m.harness; }
    if (m.mark === "wrong") { return m.harness === "pass" ? "fail" : "pass"; }
    return m.mark;  /* "pass" or "fail", said of an error or skipped outcome */
  }

  function marksChanged() {
    try { window.localStorage.setItem(MARKS_KEY, JSON.stringify(marks)); } catch (e) { /* memory only */ }
    var n = Object.keys(marks).length;
    var count = byId("marks-count");
    count.textContent = n ? n + (n === 1 ? " mark" : " marks") : "no marks yet";
    count.setAttribute("data-count", String(n));
    byId("marks-export").disabled = !n;
    byId("marks-clear").disabled = !n;
    markViews = markViews.filter(function (refresh) { return refresh(); });
  }

  /* The right/wrong buttons and note of one verdict (criterion) or decision (criterion null). */
  function markControl(t, criterion, index, outcome) {
    var node = clone("tpl-mark");
    var key = markKey(t.id, criterion, index);
    var judged = outcome === "pass" || outcome === "fail";
    var choices = judged ? [["right", "✓ right"], ["wrong", "✗ wrong"]]
      : [["pass", "should pass"], ["fail", "should fail"]];
    var what = criterion === null ? "decision " + outcome : outcome;
    setField(node, "question", judged ? "Is " + what + " right?" : what + ":");
    var buttons = node.querySelectorAll(".mark-btn");
    var note = node.querySelector(".mark-note");
    Array.prototype.forEach.call(buttons, function (button, i) {
      button.textContent = choices[i][1];
      button.addEventListener("click", function () {
        var current = marks[key];
        if (current && current.mark === choices[i][0]) {
          delete marks[key];
        } else {
          marks[key] = { transcript_id: t.id, criterion: criterion, message_index: index,
                         harness: outcome, mark: choices[i][0], note: note.value };
        }
        marksChanged();
      });
    });
    note.addEventListener("input", function () {
      if (marks[key]) { marks[key].note = note.value; marksChanged(); }
    });
    function refresh() {
      var m = marks[key];
      Array.prototype.forEach.call(buttons, function (button, i) {
        button.setAttribute("aria-pressed", m && m.mark === choices[i][0] ? "true" : "false");
      });
      if (m && document.activeElement !== note) { note.value = m.note || ""; }
      return node.isConnected;  /* a view no longer on the page is dropped */
    }
    refresh();
    markViews.push(refresh);
    return node;
  }

  function marksOf(t) {
    return Object.keys(marks).filter(function (k) { return marks[k].transcript_id === t.id; }).length;
  }

  function exportLabels() {
    var lines = Object.keys(marks).sort().map(function (k) {
      var m = marks[k];
      var record = { transcript_id: m.transcript_id, label: labelOf(m) };
      if (m.criterion !== null) { record.criterion = m.criterion; }
      if (m.message_index !== null && m.message_index !== undefined) { record.message_index = m.message_index; }
      record.mark = m.mark;
      record.harness = m.harness;
      if (m.note) { record.note = m.note; }
      return JSON.stringify(record);
    });
    var blob = new Blob([lines.join("\n") + "\n"], { type: "application/x-ndjson" });
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "labels.jsonl";
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(function () { URL.revokeObjectURL(link.href); }, 60000);
  }

  function haystack(t) {
    if (t._haystack === undefined) {
      var parts = [t.id, t.source, t.metadata];
      t.messages.forEach(function (m) {
        parts.push(m.content, m.reasoning || "", m.name || "", m.tool_calls || "");
      });
      t.verdicts.forEach(function (v) { parts.push(v.criterion, v.explanation, v.raw || ""); });
      t._haystack = parts.join("\n").toLowerCase();
    }
    return t._haystack;
  }

  function matches(t) {
    if (state.criterion) {
      var own = t.verdicts.filter(function (v) { return v.criterion === state.criterion; });
      if (!own.length) { return false; }
      if (state.outcome && !own.some(function (v) { return v.outcome === state.outcome; })) {
        return false;
      }
    } else if (state.outcome && t.outcome !== state.outcome) {
      return false;
    }
    return !state.query || haystack(t).indexOf(state.query) !== -1;
  }

  /* Text with evidence spans highlighted: cut at every span boundary, mark covered pieces. */
  function highlighted(text, spans) {
    var frag = document.createDocumentFragment();
    var cuts = [0, text.length];
    spans.forEach(function (s) {
      cuts.push(Math.max(0, Math.min(s.start, text.length)), Math.max(0, Math.min(s.end, text.length)));
    });
    cuts = cuts.sort(function (a, b) { return a - b; }).filter(function (x, i, a) { return i === 0 || x !== a[i - 1]; });
    for (var i = 0; i + 1 < cuts.length; i++) {
      var a = cuts[i], b = cuts[i + 1];
      var piece = text.slice(a, b);
      var covering = spans.filter(function (s) { return s.start <= a && s.end >= b; });
      if (covering.length) {
        var mark = el("mark", "evidence-span", piece);
        var names = covering.map(function (s) { return s.criterion; });
        mark.title = "evidence: " + names.join(", ");
        mark.setAttribute("data-criteria", names.join(" "));
        frag.appendChild(mark);
      } else {
        frag.appendChild(document.createTextNode(piece));
      }
    }
    return frag;
  }

  function spansFor(t, index, field) {
    var spans = [];
    t.verdicts.forEach(function (v) {
      v.evidence.forEach(function (e) {
        if (e[0] === index && e[3] === field) {
          spans.push({ start: e[1], end: e[2], criterion: v.criterion });
        }
      });
    });
    return spans;
  }

  function renderMessage(t, m, index) {
    var node = clone("tpl-message");
    node.classList.add("role-" + String(m.role).replace(/[^a-z]/g, ""));
    setField(node, "role", m.name ? m.role + " · " + m.name : m.role);
    slot(node, "content").appendChild(highlighted(m.content, spansFor(t, index, "content")));
    var reasoning = slot(node, "reasoning");
    if (m.reasoning) {
      reasoning.appendChild(el("div", "muted", "reasoning"));
      reasoning.appendChild(highlighted(m.reasoning, spansFor(t, index, "reasoning")));
    } else {
      reasoning.hidden = true;
    }
    setField(node, "tool_calls", m.tool_calls ? "tool calls:\n" + m.tool_calls : null);
    setField(node, "cut", m.cut ? "… " + m.cut + " more characters not embedded" : null);
    return node;
  }

  function renderVerdict(t, v) {
    var node = clone("tpl-verdict");
    node.classList.add("outcome-" + v.outcome);
    setField(node, "outcome", v.outcome);
    setField(node, "criterion", v.criterion);
    setField(node, "kind", v.kind);
    var numbers = ["score " + fmt(v.score, 3)];
    if (v.message_index !== null && v.message_index !== undefined) { numbers.push("message " + v.message_index); }
    numbers.push(fmt(v.latency_s * 1000, 2) + " ms");
    if (v.tokens_in || v.tokens_out) { numbers.push((v.tokens_in || 0) + " / " + (v.tokens_out || 0) + " tokens"); }
    if (v.cost_usd !== null && v.cost_usd !== undefined) { numbers.push("$" + fmt(v.cost_usd, 5)); }
    setField(node, "numbers", numbers.join(" · "));
    setField(node, "explanation", v.explanation);
    if (v.kind === "input") {
      slot(node, "mark").hidden = true;
    } else {
      slot(node, "mark").appendChild(markControl(t, v.criterion,
        v.message_index === undefined ? null : v.message_index, v.outcome));
    }
    var list = slot(node, "evidence");
    v.evidence.forEach(function (e) {
      var m = t.messages[e[0]];
      var text = m ? (e[3] === "reasoning" ? m.reasoning || "" : m.content).slice(e[1], e[2]) : "";
      var item = el("li", null, "message " + e[0] + (e[3] === "reasoning" ? " (reasoning)" : "") + ": ");
      item.appendChild(el("mark", "evidence-span", text));
      list.appendChild(item);
    });
    if (!v.evidence.length) { list.hidden = true; }
    var raw = node.querySelector("details.raw");
    if (v.raw === null || v.raw === undefined) { raw.hidden = true; } else { setField(node, "raw", v.raw); }
    return node;
  }

  function renderTranscript(t) {
    var node = clone("tpl-transcript");
    node.classList.add("outcome-" + t.outcome);
    node.setAttribute("data-id", t.id);
    setField(node, "outcome", t.outcome);
    setField(node, "id", t.id);
    setField(node, "source", t.source);
    var problems = t.failed.map(function (n) { return "✗ " + n; })
      .concat(t.errored.map(function (n) { return "⚠ " + n; }));
    setField(node, "failed", problems.join("  "));
    var threshold = t.failed.indexOf("threshold") >= 0 && t.threshold_score !== null &&
      t.threshold_score !== undefined;  // what the suite threshold compared: the non-gate mean
    setField(node, "score", threshold ? "non-gate mean " + fmt(t.threshold_score, 3) + " < " +
      data.suite.threshold : t.score === null ? null : "score " + fmt(t.score, 3));
    var marked = node.querySelector('[data-field="marks"]');
    markViews.push(function () {
      var n = marksOf(t);
      marked.textContent = n ? "✎ " + n + (n === 1 ? " mark" : " marks") : "";
      return node.isConnected;
    });
    var filled = false;
    node.addEventListener("toggle", function () {
      if (!node.open || filled) { return; }
      filled = true;
      slot(node, "decision-mark").appendChild(markControl(t, null, null, t.outcome));
      var messages = slot(node, "messages");
      if (!t.messages.length) { messages.appendChild(el("p", "muted", "The record could not be read: no messages.")); }
      t.messages.forEach(function (m, i) { messages.appendChild(renderMessage(t, m, i)); });
      var verdicts = slot(node, "verdicts");
      t.verdicts.forEach(function (v) { verdicts.appendChild(renderVerdict(t, v)); });
      setField(node, "metadata", t.metadata);
    });
    return node;
  }

  function groupNote() {
    var key = (state.criterion || "*") + "|" + (state.outcome || "");
    var group = data.sample.groups[key];
    if (!state.outcome || !group || group.seen <= group.kept) { return ""; }
    return " (a sample: the run holds " + group.seen + " such transcripts)";
  }

  function render() {
    var found = transcripts.filter(matches);
    var pages = Math.max(1, Math.ceil(found.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    var list = byId("transcript-list");
    list.replaceChildren();
    found.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE).forEach(function (t) {
      list.appendChild(renderTranscript(t));
    });
    byId("browser-status").textContent = found.length + " of " + transcripts.length +
      " embedded transcripts match" + groupNote();
    byId("browser-status").setAttribute("data-count", String(found.length));
    byId("page-info").textContent = "page " + (state.page + 1) + " of " + pages;
    byId("page-prev").disabled = state.page === 0;
    byId("page-next").disabled = state.page >= pages - 1;
    marksChanged();
  }

  function update() {
    state.criterion = byId("filter-criterion").value;
    state.outcome = byId("filter-outcome").value;
    state.query = byId("filter-search").value.trim().toLowerCase();
    state.page = 0;
    render();
  }

  byId("filter-criterion").addEventListener("change", update);
  byId("filter-outcome").addEventListener("change", update);
  byId("filter-search").addEventListener("input", update);
  byId("controls").addEventListener("submit", function (e) { e.preventDefault(); });
  byId("page-prev").addEventListener("click", function () { state.page -= 1; render(); });
  byId("page-next").addEventListener("click", function () { state.page += 1; render(); });
  byId("marks-export").addEventListener("click", exportLabels);
  byId("marks-clear").addEventListener("click", function () {
    if (window.confirm("Remove every mark of this run from this browser?")) {
      marks = {};
      marksChanged();
    }
  });
  update();
  document.body.setAttribute("data-ready", "1");
})();
