// The code upload box (templates/commands/_code_upload.html): a folder (dropped, or chosen with
// the folder input) or an archive goes to the code API; the snapshot's id then fills the hidden
// input `code_snapshot_id`. A folder is packed into a .tar here, in the browser: one request
// whatever its number of files (a multipart request carries at most 100 files), the server
// unpacking it with the same rules as any archive. No inline scripts anywhere (CSP).
(function () {
  "use strict";

  // Skipped here as on the server (commands/archive.py): never worth sending.
  var JUNK = { ".git": 1, "__pycache__": 1, "__MACOSX": 1, ".DS_Store": 1, "Thumbs.db": 1 };
  var ARCHIVE = /\.(zip|tar\.gz|tgz|tar)$/i;
  var encoder = new TextEncoder();

  function isJunk(path) {
    return path.split("/").some(function (part) { return JUNK[part] || part.indexOf("._") === 0; });
  }

  // --- A ustar archive with a PAX "path" record per file (any length, any Unicode) ---------------
  function octal(value, width) {
    var text = value.toString(8);
    while (text.length < width - 1) text = "0" + text;
    return text + "\0";
  }

  function tarHeader(name, size, type) {
    var block = new Uint8Array(512);
    function put(offset, text) { block.set(encoder.encode(text), offset); }
    put(0, name);
    put(100, "0000644\0");
    put(108, "0000000\0");
    put(116, "0000000\0");
    put(124, octal(size, 12));
    put(136, octal(Math.floor(Date.now() / 1000), 12));
    put(148, "        ");
    put(156, type);
    put(257, "ustar\0");
    put(263, "00");
    var sum = 0;
    for (var i = 0; i < 512; i++) sum += block[i];
    put(148, octal(sum, 7) + " ");
    return block;
  }

  function padding(size) {
    return new Uint8Array((512 - (size % 512)) % 512);
  }

  function paxRecord(path) {
    var body = encoder.encode(" path=" + path + "\n").length;
    var length = body + String(body).length;
    while (body + String(length).length !== length) length = body + String(length).length;
    return encoder.encode(length + " path=" + path + "\n");
  }

  function packTar(entries) {
    var parts = [];
    entries.forEach(function (entry, index) {
      var pax = paxRecord(entry.path);
      parts.push(tarHeader("PaxHeader/" + index, pax.length, "x"), pax, padding(pax.length));
      parts.push(tarHeader("file" + index, entry.file.size, "0"), entry.file, padding(entry.file.size));
    });
    parts.push(new Uint8Array(1024));
    return new Blob(parts, { type: "application/x-tar" });
  }

  // --- Files of a dropped folder (DataTransferItem.webkitGetAsEntry) ------------------------------
  function readEntry(entry, out) {
    if (entry.isFile) {
      return new Promise(function (resolve, reject) {
        entry.file(function (file) { out.push({ path: entry.fullPath.replace(/^\//, ""), file: file }); resolve(); }, reject);
      });
    }
    var reader = entry.createReader();
    return new Promise(function (resolve, reject) {
      var children = [];
      (function more() {  // readEntries gives a batch at a time, until an empty one
        reader.readEntries(function (batch) {
          if (!batch.length) {
            Promise.all(children.map(function (child) { return readEntry(child, out); })).then(resolve, reject);
            return;
          }
          children = children.concat(batch);
          more();
        }, reject);
      })();
    });
  }

  function folderName(entries) {
    var first = entries.length ? entries[0].path.split("/") : [];
    if (first.length < 2) return "";
    var top = first[0];
    return entries.every(function (e) { return e.path.indexOf(top + "/") === 0; }) ? top : "";
  }

  function kib(bytes) {
    return bytes < 1024 ? bytes + " B" : (bytes / 1024).toLocaleString(undefined, { maximumFractionDigits: 1 }) + " KB";
  }

  function setup(box) {
    if (box.hasAttribute("data-ready")) return;
    box.setAttribute("data-ready", "");
    var zone = box.querySelector("[data-code-dropzone]");
    var folderInput = box.querySelector("[data-code-folder]");
    var archiveInput = box.querySelector("[data-code-archive]");
    var hidden = box.querySelector("[data-code-snapshot-id]");
    var progress = box.querySelector("[data-code-progress]");
    var bar = progress.querySelector("progress");
    var progressText = box.querySelector("[data-code-progress-text]");
    var error = box.querySelector("[data-code-error]");
    var result = box.querySelector("[data-code-result]");

    function fail(message) {
      progress.hidden = true;
      error.textContent = message;
      error.hidden = false;
    }

    function send(blob, filename, name) {
      error.hidden = true;
      result.hidden = true;
      hidden.value = "";
      var body = new FormData();
      if (name) body.append("name", name);
      body.append("file", blob, filename);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", box.getAttribute("data-code-upload"));
      xhr.setRequestHeader("Accept", "application/json");
      // The token goes in the header: the server checks it before it reads (and stores) the body.
      xhr.setRequestHeader("X-CSRFToken", box.getAttribute("data-csrf"));
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        bar.value = Math.round(100 * e.loaded / e.total);
        progressText.textContent = bar.value + "% of " + kib(e.total);
      });
      xhr.addEventListener("load", function () {
        var data = {};
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = {}; }
        if (xhr.status !== 200 && xhr.status !== 201) {
          fail((data.error && data.error.message) || ("The upload failed (HTTP " + xhr.status + ")."));
          return;
        }
        progress.hidden = true;
        hidden.value = data.id;
        result.textContent = "";
        var summary = document.createElement("strong");
        summary.setAttribute("data-testid", "code-summary");
        summary.textContent = data.file_count + (data.file_count === 1 ? " file, " : " files, ") + kib(data.size) + " (stored once)";
        result.appendChild(summary);
        if (xhr.status === 200) result.appendChild(document.createTextNode(" — the same code was already here: it is reused."));
        var link = box.getAttribute("data-code-detail").replace(/\/0\/$/, "/" + data.id + "/");
        var open = document.createElement("a");
        open.href = link;
        open.className = "button small";
        open.textContent = "Open " + data.name;
        open.setAttribute("data-testid", "code-open");
        if (box.closest("form")) {  // in a job form: open it beside, so nothing typed is lost
          open.target = "_blank";
          open.rel = "noopener";
        }
        result.appendChild(document.createTextNode(" "));
        result.appendChild(open);
        var list = document.createElement("ul");
        list.className = "small";
        data.files.slice(0, 20).forEach(function (f) {
          var li = document.createElement("li");
          li.textContent = f.path + " (" + kib(f.size) + ")";
          list.appendChild(li);
        });
        if (data.files.length > 20) {
          var more = document.createElement("li");
          more.textContent = "… and " + (data.files.length - 20) + " more";
          list.appendChild(more);
        }
        result.appendChild(list);
        result.hidden = false;
        box.dispatchEvent(new CustomEvent("code-snapshot", { bubbles: true, detail: data }));
      });
      xhr.addEventListener("error", function () { fail("The upload failed: the connection was lost."); });
      progress.hidden = false;
      bar.value = 0;
      progressText.textContent = "Uploading…";
      xhr.send(body);
    }

    function sendFolder(entries) {
      entries = entries.filter(function (e) { return !isJunk(e.path); });
      entries.sort(function (a, b) { return a.path < b.path ? -1 : a.path > b.path ? 1 : 0; });
      if (!entries.length) { fail("The folder holds no file to upload."); return; }
      var name = folderName(entries) || "code";
      send(packTar(entries), name + ".tar", name);
    }

    folderInput.addEventListener("change", function () {
      var entries = Array.prototype.map.call(folderInput.files, function (file) {
        return { path: file.webkitRelativePath || file.name, file: file };
      });
      folderInput.value = "";
      sendFolder(entries);
    });
    archiveInput.addEventListener("change", function () {
      var file = archiveInput.files[0];
      archiveInput.value = "";
      if (file) send(file, file.name, "");
    });

    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      var items = Array.prototype.slice.call(event.dataTransfer.items || []);
      var roots = items.map(function (item) { return item.webkitGetAsEntry && item.webkitGetAsEntry(); }).filter(Boolean);
      var files = event.dataTransfer.files;
      var oneFile = roots.length ? roots.length === 1 && roots[0].isFile : files.length === 1;
      if (oneFile && files.length === 1 && ARCHIVE.test(files[0].name)) {
        send(files[0], files[0].name, "");
        return;
      }
      if (!roots.length) {  // no entry API: plain files only
        sendFolder(Array.prototype.map.call(files, function (file) { return { path: file.name, file: file }; }));
        return;
      }
      var entries = [];
      Promise.all(roots.map(function (root) { return readEntry(root, entries); })).then(
        function () { sendFolder(entries); },
        function () { fail("The dropped folder could not be read."); }
      );
    });
    zone.addEventListener("click", function () { folderInput.click(); });
    zone.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); folderInput.click(); }
    });
  }

  function setupAll() { document.querySelectorAll("[data-code-upload]").forEach(setup); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setupAll);
  else setupAll();
  document.addEventListener("htmx:afterSettle", setupAll);
})();
