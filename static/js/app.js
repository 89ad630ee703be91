// Every page (templates/base.html). Wide tables scroll inside their card instead of widening the page: each table
// not already in a .scroll box gets one, and a box whose content is wider than it is marked .overflowing (CSS draws a
// shadow on the side with more and a "scroll →" hint) and becomes a focusable, labelled region so a keyboard can scroll
// it. Runs again after htmx swaps content in and when a box changes size.
(function () {
  "use strict";

  // The table's caption, else the nearest heading before it in its card; a number tells apart boxes named alike.
  function label(box) {
    const table = box.querySelector("table");
    const caption = table && table.querySelector("caption");
    let name = caption ? caption.textContent.trim() : "";
    for (let node = box; !name && node && !node.matches("main"); node = node.parentElement) {
      for (let before = node.previousElementSibling; !name && before; before = before.previousElementSibling) {
        const heading = before.matches("h1, h2, h3, h4") ? before : before.querySelector("h1, h2, h3, h4");
        if (heading) name = heading.textContent.trim().replace(/\s+/g, " ");
      }
    }
    name = name || (table ? "Table" : "Text");
    const taken = new Set([...document.querySelectorAll("[data-cue-label]")].filter((other) => other !== box).map((other) => other.getAttribute("aria-label")));
    const suffix = box.scrollWidth - box.clientWidth > 1 ? " (scrolls sideways)" : " (scrolls)";
    let candidate = name + suffix;
    for (let number = 2; taken.has(candidate); number += 1) candidate = `${name} ${number}${suffix}`;
    return candidate;
  }

  function update(box) {
    const wider = box.scrollWidth - box.clientWidth > 1;
    box.classList.toggle("overflowing", wider);
    box.classList.toggle("at-start", box.scrollLeft <= 1);
    box.classList.toggle("at-end", box.scrollLeft + box.clientWidth >= box.scrollWidth - 1);
    if (wider || box.scrollHeight - box.clientHeight > 1) {
      box.setAttribute("tabindex", "0");
      box.setAttribute("role", "region");
      if (!box.hasAttribute("aria-label") || (box.dataset.cueLabel && box.dataset.cueLabel !== String(wider))) {
        box.dataset.cueLabel = String(wider);
        box.setAttribute("aria-label", label(box));
      }
    } else if (box.dataset.madeFocusable !== "no") {
      box.removeAttribute("tabindex");
      box.removeAttribute("role");
      if (box.dataset.cueLabel) box.removeAttribute("aria-label");
    }
  }

  const resized = "ResizeObserver" in window ? new ResizeObserver((entries) => entries.forEach((entry) => update(entry.target))) : null;

  function enhance(root) {
    root.querySelectorAll("main table").forEach((table) => {
      if (table.parentElement.closest(".scroll") || table.closest("pre")) return;
      const box = document.createElement("div");
      box.className = "scroll";
      table.parentNode.insertBefore(box, table);
      box.appendChild(table);
    });
    root.querySelectorAll(".scroll, main pre").forEach((box) => {
      if (box.dataset.scrollCue) return;
      box.dataset.scrollCue = "1";
      if (box.hasAttribute("tabindex")) box.dataset.madeFocusable = "no";
      box.addEventListener("scroll", () => update(box), { passive: true });
      if (resized) resized.observe(box);
      update(box);
    });
  }

  function start() {
    enhance(document);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
  document.addEventListener("htmx:afterSettle", (event) => enhance(event.target.closest("main") ? event.target : document));
  window.addEventListener("resize", () => document.querySelectorAll(".scroll, main pre").forEach(update));
})();
