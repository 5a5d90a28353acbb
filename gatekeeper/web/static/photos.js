// Progressive enhancement of the photo pages: every page works without this file.
// Upload form: drop photos or a zip anywhere on the form. Batch page: poll its JSON and update
// the table in place. Photo page: reload once the check has finished.
(function () {
  "use strict";

  function upload() {
    var form = document.getElementById("upload-form");
    if (!form) return;
    var input = form.querySelector("input[type=file]");
    var zone = document.getElementById("dropzone");
    var hint = document.getElementById("drop-hint");
    var count = document.getElementById("drop-count");
    if (!input || !zone || typeof DataTransfer === "undefined") return;
    hint.hidden = false;
    function show() {
      var n = input.files ? input.files.length : 0;
      count.textContent = n ? n + (n === 1 ? " file chosen" : " files chosen") : "";
    }
    input.addEventListener("change", show);
    ["dragenter", "dragover"].forEach(function (name) {
      form.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      form.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.remove("dragging");
      });
    });
    form.addEventListener("drop", function (event) {
      var dropped = event.dataTransfer && event.dataTransfer.files;
      if (!dropped || !dropped.length) return;
      var all = new DataTransfer();
      Array.prototype.forEach.call(input.files || [], function (f) { all.items.add(f); });
      Array.prototype.forEach.call(dropped, function (f) { all.items.add(f); });
      input.files = all.files;
      show();
    });
  }

  var LABELS = {
    publishable: "Publishable", blocked: "Blocked", review: "Needs review", queued: "Waiting",
    processing: "Being checked", failed: "Check failed", deleted: "Deleted"
  };

  function batch() {
    var root = document.getElementById("batch");
    if (!root || root.getAttribute("data-finished") === "yes") return;
    var url = root.getAttribute("data-poll");
    var progress = document.getElementById("progress");
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error(response.status);
          return response.json();
        })
        .then(function (data) {
          var done = 0;
          data.photos.forEach(function (p) {
            if (p.verdict || p.status === "failed" || p.status === "deleted") done += 1;
            var row = document.querySelector('tr[data-position="' + p.position + '"]');
            if (!row) return;
            var key = p.verdict || p.status;
            var cell = row.querySelector(".verdict-cell");
            var span = document.createElement("span");
            span.className = "verdict " + key;
            span.textContent = LABELS[key] || key;
            cell.replaceChildren(span);
            row.querySelector(".reasons-cell").textContent = p.error || p.reasons.join("; ");
          });
          if (data.finished) {
            // Counts, filters and the download button come with the finished page.
            window.location.reload();
            return;
          }
          progress.textContent = "Still checking: " + done + " of " + data.photos.length +
            (data.photos.length === 1 ? " photo" : " photos") + " done.";
          window.setTimeout(poll, 2000);
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  }

  function photo() {
    var root = document.getElementById("photo");
    if (!root) return;
    var status = root.getAttribute("data-status");
    if (status === "queued" || status === "processing") {
      window.setTimeout(function () { window.location.reload(); }, 2000);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    upload();
    batch();
    photo();
  });
})();
