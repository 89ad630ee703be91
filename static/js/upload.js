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

  // Delegated, so the buttons still work after the form's fields are replaced by a page with errors.
  form.addEventListener("click", function (event) {
    const button = event.target.closest("button.add-row");
    if (!button) return;
    const body = button.previousElementSibling.querySelector("tbody");
    const last = body.lastElementChild.cloneNode(true);
    last.classList.remove("row-error");
    last.querySelectorAll(".field-error").forEach(function (node) { node.remove(); });
    last.querySelectorAll("input").forEach(function (input) { input.value = ""; input.removeAttribute("aria-invalid"); });
    body.appendChild(last);
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

  // Submitting: the fields (and the chosen files' paths and sizes) go first, so a refusal costs no upload and the
  // chosen files stay chosen; then an upload session takes the bytes, in pieces that a dropped connection resumes
  // (local disk: PATCH at the offset HEAD gives; S3: presigned parts straight to the bucket); then it registers.
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const PIECE = 8 * 1024 * 1024;
  const RETRIES = 8;

  function pause(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function showProgress(done, total) {
    const share = total ? Math.round((done / total) * 100) : 100;
    progress.value = share;
    status.textContent = "Uploading… " + share + "% (" + humanSize(done) + " of " + humanSize(total) + ")";
  }

  function showPageWithErrors(html) {
    // Everything but the files card and the submit bar comes from the answer, so the chosen files (live inputs) stay
    // chosen and the progress bar and status this script holds stay on the page.
    const fresh = new DOMParser().parseFromString(html, "text/html");
    const filesCard = document.getElementById("files-card");
    const submitBar = submit.closest(".submitbar");
    const freshForm = fresh.getElementById("upload-form");
    const oldBox = document.querySelector(".errorbox");
    if (oldBox) oldBox.remove();
    const box = fresh.querySelector(".errorbox");
    if (box) form.before(document.importNode(box, true));
    Array.from(form.children).forEach(function (child) { if (child !== filesCard && child !== submitBar) child.remove(); });
    Array.from(freshForm.children).forEach(function (child) {
      if (child.id === "files-card") form.appendChild(filesCard);
      else if (child.classList.contains("submitbar")) form.appendChild(submitBar);
      else form.appendChild(document.importNode(child, true));
    });
    (document.querySelector(".errorbox") || form).scrollIntoView();
  }

  async function send(url, options) {
    const headers = Object.assign({ "X-CSRFToken": csrf }, options.headers || {});
    return fetch(url, Object.assign({}, options, { headers: headers, credentials: "same-origin" }));
  }

  async function failure(response) {
    try { return (await response.json()).error.message; } catch (error) { return "The registry answered " + response.status + "."; }
  }

  async function withRetries(attempt, what) {
    for (let tries = 0; ; tries++) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof TypeError) || tries >= RETRIES) throw error;  // TypeError: the network, worth another try
        status.textContent = "Connection lost while sending " + what + "; resuming…";
        await pause(Math.min(500 * 2 ** tries, 8000));
      }
    }
  }

  async function sendLocal(item, file, tally) {
    let offset = item.offset || 0;
    while (offset < item.size) {
      const end = Math.min(offset + PIECE, item.size);
      const sent = await withRetries(async function () {
        let response;
        try {
          response = await send(item.upload_url, {
            method: "PATCH", body: file.slice(offset, end),
            headers: { "Content-Type": "application/offset+octet-stream", "Upload-Offset": String(offset) },
          });
        } catch (error) {
          // What arrived before the connection broke stays on the registry: ask where to go on from.
          const head = await send(item.upload_url, { method: "HEAD" }).catch(function () { return null; });
          if (head && head.ok) { tally(Number(head.headers.get("Upload-Offset")) - offset); offset = Number(head.headers.get("Upload-Offset")); }
          throw error;
        }
        if (response.status === 409 && response.headers.get("Upload-Offset") !== null) {
          const known = Number(response.headers.get("Upload-Offset"));
          if (known === 0 && offset > 0) throw new Error(await failure(response));
          return known;
        }
        if (response.status === 409) throw new TypeError("the previous request still holds the file");  // let it finish, then go on
        if (!response.ok) throw new Error(await failure(response));
        return Number(response.headers.get("Upload-Offset"));
      }, item.path);
      tally(sent - offset);
      offset = sent;
    }
  }

  async function sendS3(item, file, tally) {
    const count = Math.max(1, Math.ceil(item.size / item.part_size));
    for (let number = 1; number <= count; number++) {
      const piece = file.slice((number - 1) * item.part_size, Math.min(number * item.part_size, item.size));
      const digest = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", await piece.arrayBuffer())))
        .map(function (b) { return b.toString(16).padStart(2, "0"); }).join("");
      await withRetries(async function () {
        const answer = await send(item.parts_url, {
          method: "POST", body: JSON.stringify({ parts: [{ number: number, sha256: digest }] }), headers: { "Content-Type": "application/json" },
        });
        if (!answer.ok) throw new Error(await failure(answer));
        const part = (await answer.json()).parts[0];
        const put = await fetch(part.url, { method: "PUT", body: piece, headers: part.headers });
        if (!put.ok) throw new Error("The artifact store refused part " + number + " of " + item.path + " (" + put.status + ").");
      }, item.path);
      tally(piece.size);
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const chosen = chosenFiles();
    const byPath = {};
    chosen.forEach(function (item) { byPath[item.path] = item.file; });
    const data = new FormData(form);
    data.delete("files");  // the bytes go to the upload session, not in this request
    data.append("declared", JSON.stringify(chosen.map(function (item) { return { path: item.path, size: item.file.size }; })));
    submit.disabled = true;
    status.textContent = "Checking the form…";
    try {
      const answer = await send(form.dataset.sessionUrl, { method: "POST", body: data });
      if (!answer.ok) {
        if ((answer.headers.get("Content-Type") || "").startsWith("text/html")) {
          showPageWithErrors(await answer.text());
          status.textContent = "Nothing was uploaded: fix what is marked and submit again (your files are still chosen).";
          return;
        }
        throw new Error(await failure(answer));
      }
      const opened = await answer.json();
      const session = opened.session;
      const pending = session.files.filter(function (item) { return item.status !== "stored"; });
      const total = pending.reduce(function (sum, item) { return sum + item.size; }, 0);
      let done = 0;
      const tally = function (count) { done += count; showProgress(done, total); };
      progress.hidden = false;
      showProgress(0, total);
      for (const item of pending) {
        const file = byPath[item.path];
        await (session.storage === "s3" ? sendS3(item, file, tally) : sendLocal(item, file, tally));
        await withRetries(async function () {
          const complete = await send(item.complete_url, { method: "POST" });
          if (!complete.ok) throw new Error(await failure(complete));
        }, item.path);
      }
      status.textContent = "Upload complete; registering…";
      const registered = await withRetries(function () { return send(opened.register_url, { method: "POST" }); }, "the registration");
      if (!registered.ok) throw new Error(await failure(registered));
      window.location.assign((await registered.json()).redirect);
    } catch (error) {
      status.textContent = "The upload stopped: " + (error.message || error) + " Submit again to retry.";
    } finally {
      submit.disabled = false;
    }
  });
})();
