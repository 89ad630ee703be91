// "Copy" buttons (templates/catalog/partials/use_this_version.html): data-copy names the element whose text is copied.
(function () {
  "use strict";
  if (window.registryCopy) return;
  window.registryCopy = true;
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.textContent).then(done, () => selectText(source));
    } else {
      selectText(source);
      try { if (document.execCommand("copy")) done(); } catch (error) { /* the text stays selected for Ctrl-C */ }
    }
  });
  function selectText(node) {
    const range = document.createRange();
    range.selectNodeContents(node);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
})();
