// Upload form: adds rows, keeps folder-relative paths, and shows upload progress.
// Without this script the form still posts (file names then lose their folders).
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const filesInput = document.getElementById("id_files");
  const folderInput = document.getElementById("id_folder");
  const list = document.getElementById("file-list");
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const submit = document.getElementById("upload-submit");

  form.querySelectorAll("button.add-row").forEach(function (button) {
    button.addEventListener("click", function () {
      const body = button.previousElementSibling.querySelector("tbody");
      const last = body.lastElementChild.cloneNode(true);
      last.querySelectorAll("input").forEach(function (input) { input.value = ""; });
      body.appendChild(last);
    });
  });

  function chosenFiles() {
    const chosen = [];
    Array.from(filesInput.files).forEach(function (file) { chosen.push({ file: file, path: file.name }); });
    Array.from(folderInput.files).forEach(function (file) {
      // Drop the picked folder's own name: "bert/tokenizer/vocab.txt" -> "tokenizer/vocab.txt".
      const parts = (file.webkitRelativePath || file.name).split("/");
      chosen.push({ file: file, path: parts.length > 1 ? parts.slice(1).join("/") : parts[0] });
    });
    return chosen;
  }

  function humanSize(bytes) {
    const units = ["B", "KiB", "MiB", "GiB"];
    let size = bytes, unit = 0;
    while (size >= 1024 && unit < units.length - 1) { size /= 1024; unit++; }
    return (unit ? size.toFixed(1) : size) + " " + units[unit];
  }

  function showList() {
    list.replaceChildren();
    chosenFiles().forEach(function (item) {
      const li = document.createElement("li");
      li.textContent = item.path + " (" + humanSize(item.file.size) + ")";
      list.appendChild(li);
    });
  }
  filesInput.addEventListener("change", showList);
  folderInput.addEventListener("change", showList);

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const data = new FormData(form);
    data.delete("files");  // both inputs post as "files"; re-add each once, with its folder-relative path
    chosenFiles().forEach(function (item) {
      data.append("files", item.file, item.path.split("/").pop());
      data.append("paths", item.path);
    });
    const request = new XMLHttpRequest();
    request.open("POST", form.action || window.location.href);
    progress.hidden = false;
    submit.disabled = true;
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        progress.value = Math.round((e.loaded / e.total) * 100);
        status.textContent = "Uploading… " + progress.value + "% (" + humanSize(e.loaded) + " of " + humanSize(e.total) + ")";
      }
    });
    request.upload.addEventListener("load", function () { status.textContent = "Upload complete; storing and checksumming…"; });
    request.addEventListener("load", function () {
      // Show the page the request ended on: the new version's page after the server's redirect, or the form
      // with its errors. Do not load the version page again: the request already fetched it, and that fetch
      // used up the one-time "Registered … v1" message, so a second load would show the page without it.
      if (request.responseURL && request.responseURL !== window.location.href) {
        try {
          // Before writing, so the address bar (and a reload) shows the version page and relative URLs resolve there.
          window.history.replaceState(null, "", request.responseURL);
        } catch (error) {
          window.location.assign(request.responseURL);
          return;
        }
      }
      document.open();
      document.write(request.responseText);
      document.close();
    });
    request.addEventListener("error", function () {
      submit.disabled = false;
      status.textContent = "The upload failed (network error). Check your connection and submit again.";
    });
    request.send(data);
  });
})();
