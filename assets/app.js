// leadtrail dashboard: comfort on top of pages that already work without it.
document.documentElement.classList.add("js");

// On a narrow screen the tab bar scrolls: keep the current tab in sight.
const currentTab = document.querySelector(".tabs [aria-current=page]");
if (currentTab) currentTab.scrollIntoView({ block: "nearest", inline: "center" });

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  // Plain-http deployments have no async clipboard; the old path still works there.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (button) {
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    copyText(button.dataset.copy).then(
      () => { button.textContent = "Copied"; button.classList.add("copied"); },
      () => { button.textContent = "Press Ctrl+C"; }
    );
    setTimeout(() => { button.textContent = label; button.classList.remove("copied"); }, 2000);
    return;
  }
  // One open row menu at a time; a click elsewhere closes it.
  document.querySelectorAll("details.menu[open], details.account[open]").forEach((d) => {
    if (!d.contains(event.target)) d.removeAttribute("open");
  });
});

document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});

// Slide-overs: Escape closes (by following the Cancel link, so the URL stays the truth).
const panel = document.querySelector(".slide-over");
if (panel) {
  const first = panel.querySelector("input:not([type=hidden]), select, button");
  if (first) first.focus();
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      const close = document.querySelector("a.scrim");
      if (close) window.location.href = close.href;
    }
  });
}

// Settings: the QR preview follows the brand colour as it is typed.
const colour = document.querySelector("input[data-qr-preview]");
if (colour) {
  const image = document.getElementById(colour.dataset.qrPreview);
  const message = document.getElementById("colour-message");
  let timer = null;
  const refresh = () => {
    const url = "/app/settings/qr-preview.svg?color=" + encodeURIComponent(colour.value);
    fetch(url, { credentials: "same-origin" }).then(async (response) => {
      if (response.ok) {
        image.src = URL.createObjectURL(await response.blob());
        message.textContent = "";
      } else {
        message.textContent = await response.text();
      }
    });
  };
  colour.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 150); });
}

// Destructive buttons ask first; without script the post goes straight through.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
