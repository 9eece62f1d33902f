// Studio's small behaviours. No inline scripts anywhere (CSP): pages declare data-* attributes.
(function () {
  "use strict";

  // <form data-confirm="…"> asks before submitting (deleting, revoking).
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  }, true);

  // <select data-autosubmit> submits its form when changed.
  document.addEventListener("change", function (event) {
    if (event.target.matches("select[data-autosubmit]")) {
      event.target.form.requestSubmit();
    }
  });

  // <button data-copy="#selector"> copies the element's text.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = "Copied";
      });
    }
  });

  // A page showing a secret once ([data-warn-leave]) asks before the browser leaves it, unless
  // the user takes the page's own way on ([data-leave-ok]), having copied the secret.
  var leavingOnPurpose = false;
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-leave-ok]")) leavingOnPurpose = true;
  });
  window.addEventListener("beforeunload", function (event) {
    if (leavingOnPurpose || !document.querySelector("[data-warn-leave]")) return;
    event.preventDefault();
    event.returnValue = "";
  });

  // <div data-chart="id"> is drawn by plotly.js from the JSON in <script id="id" type="application/json">.
  function drawCharts(root) {
    if (!window.Plotly) return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var source = document.getElementById(el.getAttribute("data-chart"));
      if (!source) return;
      var figure = JSON.parse(source.textContent);
      window.Plotly.react(el, figure.data, figure.layout, { displaylogo: false, responsive: true });
    });
  }
  window.addEventListener("load", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });

  // <form data-upload>: drag-and-drop onto [data-dropzone], and an upload with a real progress
  // bar (XMLHttpRequest's upload progress), then on to the page the server names.
  function setupUpload(form) {
    var input = form.querySelector("input[type=file]");
    var zone = form.querySelector("[data-dropzone]");
    var fileName = form.querySelector("[data-file-name]");
    var nameInput = form.querySelector("input[name=name]");
    function chosen() {
      if (!input.files.length) return;
      fileName.textContent = input.files[0].name + " (" + Math.round(input.files[0].size / 1024).toLocaleString() + " KiB)";
      if (nameInput && !nameInput.value && !form.hasAttribute("data-no-name-from-file")) {
        nameInput.value = input.files[0].name.replace(/\.(csv|tsv|txt|parquet|pq)(\.gz)?$/i, "");
      }
    }
    input.addEventListener("change", chosen);
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer.files.length) { input.files = event.dataTransfer.files; chosen(); }
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var box = form.querySelector("[data-progress]");
      var bar = box.querySelector("progress");
      var text = box.querySelector("[data-progress-text]");
      var error = form.querySelector("[data-upload-error]");
      var button = form.querySelector("button[type=submit]");
      error.hidden = true;
      if (!input.files.length) { error.textContent = "Choose a file to upload."; error.hidden = false; return; }
      box.hidden = false;
      button.disabled = true;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action || window.location.href);
      xhr.setRequestHeader("Accept", "application/json");
      // The token goes in the header: the server checks it before it reads (and stores) the file.
      xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        var pct = Math.round(100 * e.loaded / e.total);
        bar.value = pct;
        text.textContent = pct + "% of " + Math.round(e.total / 1024).toLocaleString() + " KiB";
      });
      xhr.addEventListener("load", function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = {}; }
        if (xhr.status === 202 && body.url) { text.textContent = "Uploaded. Ingesting…"; window.location = body.url; return; }
        if (xhr.status === 201 && body.url) { text.textContent = "Uploaded."; window.location = body.url; return; }
        var messages = [];
        Object.keys(body.errors || {}).forEach(function (k) { messages = messages.concat(body.errors[k]); });
        error.textContent = messages.join(" ") || ("The upload failed (HTTP " + xhr.status + ").");
        if (body.same_as && body.same_as.url) {
          // An identical file: offer the version that already has it (or tick "Make a new version anyway").
          var link = document.createElement("a");
          link.href = body.same_as.url; link.className = "button small"; link.textContent = "Open " + body.same_as.label;
          link.setAttribute("data-testid", "same-as");
          error.appendChild(document.createTextNode(" ")); error.appendChild(link);
        }
        error.hidden = false; box.hidden = true; button.disabled = false;
      });
      xhr.addEventListener("error", function () {
        error.textContent = "The upload was interrupted (is the file over the upload limit?).";
        error.hidden = false; box.hidden = true; button.disabled = false;
      });
      xhr.send(new FormData(form));
    });
  }
  document.querySelectorAll("form[data-upload]").forEach(setupUpload);

  // <form data-score-test>: build one record from the inputs (typed by data-type) and show the
  // endpoint's answer.
  document.querySelectorAll("form[data-score-test]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var record = {};
      form.querySelectorAll("[data-column]").forEach(function (input) {
        var raw = input.value.trim(), type = input.getAttribute("data-type"), value = raw;
        if (raw === "") value = null;
        else if (type === "numeric") value = Number(raw);
        else if (type === "integer") value = parseInt(raw, 10);
        else if (type === "boolean") value = ["true", "yes", "1"].indexOf(raw.toLowerCase()) >= 0;
        record[input.getAttribute("data-column")] = value;
      });
      var body = new FormData();
      body.append("payload", JSON.stringify([record]));
      body.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
      var out = document.querySelector("[data-test-response]");
      out.textContent = "Scoring…";
      fetch(form.action, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (json) { out.textContent = JSON.stringify(json, null, 2); })
        .catch(function (e) { out.textContent = "Failed: " + e; });
    });
  });

  // <form data-score-json>: send the textarea's JSON body as it is (a forecasting deployment) and
  // show the forecasts as a table (series, time, forecast, lower, upper) above the raw answer.
  function forecastTable(box, rows) {
    var series = (box.getAttribute("data-series") || "").split("|").filter(Boolean);
    var columns = series.concat([box.getAttribute("data-time"), "forecast", "lower", "upper"]);
    var table = document.createElement("table");
    table.className = "table compact";
    var head = table.createTHead().insertRow();
    columns.forEach(function (name) {
      var th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    });
    var body = table.createTBody();
    rows.forEach(function (row) {
      var tr = body.insertRow();
      columns.forEach(function (name) {
        var td = tr.insertCell(), value = row[name];
        if (typeof value === "number") { td.className = "num"; value = Math.round(value * 10000) / 10000; }
        td.textContent = value === null || value === undefined ? "" : String(value);
      });
    });
    box.replaceChildren(table);
  }
  document.querySelectorAll("form[data-score-json]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var out = document.querySelector("[data-test-response]"), box = document.querySelector("[data-forecast-table]");
      var body = new FormData(form);
      out.textContent = "Forecasting…";
      if (box) box.replaceChildren();
      fetch(form.action, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (json) {
          if (box && Array.isArray(json.forecasts)) forecastTable(box, json.forecasts);
          out.textContent = JSON.stringify(json, null, 2);
        })
        .catch(function (e) { out.textContent = "Failed: " + e; });
    });
  });
  // <button data-fill="#textarea" data-fill-from="id">: put the JSON text of <script id="id"> in the textarea.
  document.querySelectorAll("[data-fill]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-fill-from"));
      document.querySelector(button.getAttribute("data-fill")).value = JSON.parse(source.textContent);
    });
  });

  // Close an open <details class="menu"> when clicking elsewhere.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
})();
