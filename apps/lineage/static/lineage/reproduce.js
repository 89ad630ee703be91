// The Reproduce panel on the version page: shows the recipe from json_script ("reproduce-data") in the <pre>
// and copies it with navigator.clipboard; where that is missing or refused, it selects the text instead.
(function () {
  "use strict";
  const data = document.getElementById("reproduce-data");
  const pre = document.getElementById("reproduce-json");
  const button = document.getElementById("reproduce-copy");
  const status = document.getElementById("reproduce-status");
  if (!data || !pre || !button) return;
  const text = JSON.stringify(JSON.parse(data.textContent), null, 2);
  pre.textContent = text;
  button.hidden = false;

  function selectText() {
    const range = document.createRange();
    range.selectNodeContents(pre);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  function fallback() {
    selectText();
    let copied = false;
    try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
    status.textContent = copied ? "Copied." : "Selected: press Ctrl+C (⌘C on a Mac) to copy.";
  }
  button.addEventListener("click", function () {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { status.textContent = "Copied."; }, fallback);
    } else {
      fallback();
    }
  });
})();
