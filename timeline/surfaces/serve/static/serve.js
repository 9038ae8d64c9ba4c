// timeline serve: two small helpers, nothing the pages need to work without.
// 1. A range slider beside each date input (data-for): moving it sets the date; letting
//    go submits the form, so the new answer's URL is a permalink like any other.
// 2. Completion for the query box: /api/complete serves words from the REPL's engine, offered
//    through the box's <datalist> as the whole query with the word completed.
"use strict";
(function () {
  const DAY = 86400000;
  const toDays = (iso) => Math.round(Date.parse(iso + "T00:00:00Z") / DAY);
  const toIso = (days) => new Date(days * DAY).toISOString().slice(0, 10);

  for (const slider of document.querySelectorAll("input.slider[data-for]")) {
    const input = document.getElementById(slider.dataset.for);
    if (!input) continue;
    slider.min = String(toDays(slider.dataset.min));
    slider.max = String(toDays(slider.dataset.max));
    slider.step = "1";
    slider.value = String(input.value ? toDays(input.value) : slider.max);
    slider.addEventListener("input", () => { input.value = toIso(Number(slider.value)); });
    slider.addEventListener("change", () => {
      input.value = toIso(Number(slider.value));
      if (input.form) input.form.requestSubmit();
    });
    input.addEventListener("change", () => {
      if (input.value) slider.value = String(toDays(input.value));
    });
  }

  const box = document.getElementById("q");
  const list = document.getElementById("q-suggestions");
  if (box && list) {
    let asked = "";
    box.addEventListener("input", async () => {
      const text = box.value.slice(0, box.selectionStart ?? box.value.length);
      if (text === asked) return;
      asked = text;
      try {
        const reply = await fetch("/api/complete?q=" + encodeURIComponent(text));
        if (!reply.ok || asked !== text) return;
        const data = await reply.json();
        const stem = text.slice(0, text.length - data.word.length);
        list.replaceChildren(...data.suggestions.map((word) => {
          const option = document.createElement("option");
          option.value = stem + word;
          if (data.titles[word]) option.label = data.titles[word];
          return option;
        }));
      } catch (err) { /* completion is a convenience: the box works without it */ }
    });
  }
})();
