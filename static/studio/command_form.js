// The command job's submit form (templates/commands/_submit_code.html): the placeholders the
// command may use, kept current as inputs and outputs are declared (the same rules as
// CommandJobForm.placeholders on the server, which renders the first list); a click inserts one
// at the cursor; a placeholder the command names but nothing declares is pointed out at once.
// The server checks again on submit. No inline scripts (CSP).
(function () {
  "use strict";

  var NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
  var LINE = /^\s*([^=\s]+)\s*=(.*)$/;
  var CANDIDATE = /\$\{\{([\s\S]*?)\}\}/g;
  var PLACEHOLDER = /^\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]{0,63})\s*$/;

  function setup(root) {
    if (root.hasAttribute("data-ready")) return;
    root.setAttribute("data-ready", "");
    var form = root.closest("form") || root;
    var list = root.querySelector("[data-command-placeholders]");
    var empty = root.querySelector("[data-command-placeholders-empty]");
    var unknown = root.querySelector("[data-command-unknown]");
    var command = form.querySelector("textarea[name=command]");

    function field(name) {
      var element = form.querySelector("[name=" + name + "]");
      return element ? element.value : "";
    }

    function declared() {
      var found = [];
      var seen = {};
      function add(text, meaning) {
        if (seen[text]) return;
        seen[text] = true;
        found.push([text, meaning]);
      }
      form.querySelectorAll("input[name^=data_name_]").forEach(function (input) {
        var row = input.name.slice("data_name_".length);
        var select = form.querySelector("select[name=data_version_" + row + "]");
        var name = input.value.trim();
        if (NAME.test(name) && select && select.value) {
          add("inputs." + name, "data: " + select.options[select.selectedIndex].text);
        }
      });
      field("values").split(/\r?\n/).forEach(function (line) {
        var match = LINE.exec(line);
        if (match && NAME.test(match[1])) add("inputs." + match[1], "value: " + match[2].trim());
      });
      [["model_outputs", "model folder"], ["folder_outputs", "folder"]].forEach(function (pair) {
        field(pair[0]).split(/[,\s]+/).forEach(function (name) {
          if (NAME.test(name)) add("outputs." + name, pair[1]);
        });
      });
      return found.map(function (item) { return ["${{" + item[0] + "}}", item[1]]; });
    }

    var shown = null;

    function render() {
      var items = declared();
      var key = JSON.stringify(items);
      // Rebuilt only when the declarations change: a chip replaced under the pointer (the command
      // box's change event fires on the chip's mousedown) would swallow the click.
      if (key === shown) { check(items); return; }
      shown = key;
      list.textContent = "";
      items.forEach(function (item) {
        var li = document.createElement("li");
        var chip = document.createElement("button");
        chip.type = "button";
        chip.className = "chip";
        chip.setAttribute("data-insert", item[0]);
        chip.title = item[1];
        var code = document.createElement("code");
        code.textContent = item[0];
        chip.appendChild(code);
        var meaning = document.createElement("span");
        meaning.className = "small muted";
        meaning.textContent = item[1];
        li.appendChild(chip);
        li.appendChild(document.createTextNode(" "));
        li.appendChild(meaning);
        list.appendChild(li);
      });
      empty.hidden = items.length > 0;
      check(items);
    }

    function check(items) {
      if (!command) return;
      var known = {};
      items.forEach(function (item) { known[item[0].replace(/\s+/g, "")] = true; });
      var missing = [];
      var match;
      CANDIDATE.lastIndex = 0;
      while ((match = CANDIDATE.exec(command.value)) !== null) {
        var parsed = PLACEHOLDER.exec(match[1]);
        var text = parsed ? "${{" + parsed[1] + "." + parsed[2] + "}}" : match[0];
        if ((!parsed || !known[text]) && missing.indexOf(text) < 0) missing.push(text);
      }
      unknown.textContent = missing.length ? "Not declared above: " + missing.join(", ") : "";
      unknown.hidden = !missing.length;
    }

    list.addEventListener("click", function (event) {
      var chip = event.target.closest("[data-insert]");
      if (!chip || !command) return;
      var text = chip.getAttribute("data-insert");
      var start = command.selectionStart, end = command.selectionEnd;
      var before = command.value.slice(0, start);
      var pad = before && !/\s$/.test(before) ? " " : "";
      command.value = before + pad + text + command.value.slice(end);
      command.selectionStart = command.selectionEnd = start + pad.length + text.length;
      command.focus();
      check(declared());
    });
    function changed(event) {
      if (event.target === command) check(declared());
      else render();
    }
    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
    render();
  }

  function setupAll() { document.querySelectorAll("[data-command-form]").forEach(setup); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setupAll);
  else setupAll();
  document.addEventListener("htmx:afterSettle", setupAll);
})();
