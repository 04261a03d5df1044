/* leadtrail lead widget. Embed with:
 *   <script src="https://LEADTRAIL_HOST/widget.js" data-key="pk_…" data-widget="01" async></script>
 * Everything lives in a shadow root (no styles leak in or out) and one global, `Leadtrail`. */
(function () {
  "use strict";
  if (window.Leadtrail) return;

  var script = document.currentScript || document.querySelector("script[data-key][src*='widget.js']");
  if (!script) return;
  var KEY = script.getAttribute("data-key") || "";
  var WIDGET = script.getAttribute("data-widget") || "01";
  var API = new URL(script.src, location.href).origin;
  var OPEN_KEY = "__OPEN_KEY__", OPEN_VALUE = "__OPEN_VALUE__";
  var FIRST_TOUCH_DAYS = 90;

  var params = new URLSearchParams(location.search);
  var pick = function (k) { var v = params.get(k); return v ? v.slice(0, 200) : undefined; };
  var utm = {};
  ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
    "gclid", "gbraid", "wbraid", "fbclid", "msclkid", "ttclid", "li_fat_id"]
    .forEach(function (k) { var v = pick(k); if (v) utm[k] = v; });
  var arrival = { v: pick("v"), s: pick("s"), page_url: location.href, referrer: document.referrer || undefined, utm: utm };

  function store(k, v) { try { if (v === undefined) return JSON.parse(localStorage.getItem(k)); localStorage.setItem(k, JSON.stringify(v)); } catch (e) { return null; } }
  function uid() { return (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now()); }

  var visitor = store("lt_vid") || uid();
  store("lt_vid", visitor);
  // First touch: the first tracked source this visitor came through, kept 90 days.
  var first = store("lt_ft");
  if (first && first.expires < Date.now()) first = null;
  if (!first && arrival.s) {
    first = { v: arrival.v, s: arrival.s, at: new Date().toISOString(), utm: utm, referrer: arrival.referrer,
      page_url: arrival.page_url, expires: Date.now() + FIRST_TOUCH_DAYS * 864e5 };
    store("lt_ft", first);
  }

  function body(extra) {
    var b = { public_key: KEY, widget: WIDGET, v: arrival.v, s: arrival.s, page_url: arrival.page_url,
      referrer: arrival.referrer, utm: utm };
    for (var k in extra) b[k] = extra[k];
    return JSON.stringify(b);
  }

  // One visit beacon per page view; text/plain keeps it a simple request (no CORS preflight).
  try {
    var beacon = body({ visitor_id: visitor });
    if (!(navigator.sendBeacon && navigator.sendBeacon(API + "/c/v1/visits", new Blob([beacon], { type: "text/plain" })))) {
      fetch(API + "/c/v1/visits", { method: "POST", body: beacon, keepalive: true, headers: { "Content-Type": "text/plain" } });
    }
  } catch (e) { /* analytics must never break the host page */ }

  var lead = null; // { id, token }
  function send(method, path, payload, idem, token) {
    var headers = { "Content-Type": "application/json", "Idempotency-Key": idem };
    if (token) headers.Authorization = "Bearer " + token;
    var attempt = function (left) {
      return fetch(API + path, { method: method, headers: headers, body: payload }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (r.ok) return j;
          if (r.status >= 500 && left > 0) return attempt(left - 1);
          var err = (j && j.error) || { message: "Something went wrong (" + r.status + ")." };
          throw err;
        });
      }, function (e) { if (left > 0) return attempt(left - 1); throw { message: "Network error; please try again." }; });
    };
    return attempt(1); // a retry reuses the Idempotency-Key, so it never creates a lead twice
  }

  // Per-widget settings: the organization's brand colour (with a text colour that reads on
  // it) and the "How did you hear about us?" question. Until they arrive, neutral defaults.
  var config = { brand_color: "#1f2937", on_brand: "#ffffff", self_report: { enabled: false, choices: [] } };
  try {
    fetch(API + "/c/v1/widget-config?public_key=" + encodeURIComponent(KEY) + "&widget=" + encodeURIComponent(WIDGET))
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (c) { if (c) { config = c; brand(); } }, function () {});
  } catch (e) { /* the widget works with its defaults */ }

  var CSS = ":host{all:initial;--brand:#1f2937;--on-brand:#fff}*{box-sizing:border-box;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif}" +
    ".launch{position:fixed;right:16px;bottom:16px;z-index:2147483000;background:var(--brand);color:var(--on-brand);border:0;border-radius:999px;padding:12px 18px;font-size:15px;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".launch:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid #2563eb;outline-offset:2px}" +
    ".backdrop{position:fixed;inset:0;z-index:2147483001;background:rgba(17,24,39,.55);display:flex;align-items:center;justify-content:center;padding:12px}" +
    ".dialog{background:#fff;color:#111827;width:100%;max-width:440px;max-height:100%;overflow:auto;border-radius:12px;padding:20px 20px 16px}" +
    "h2{font-size:20px;margin:0 0 4px}p{margin:0 0 12px;font-size:14px;color:#4b5563}" +
    "label{display:block;font-size:14px;margin:10px 0 4px;color:#111827}" +
    "input,select{width:100%;font-size:16px;padding:9px 10px;border:1px solid #9ca3af;border-radius:8px;background:#fff;color:#111827}" +
    ".row{display:flex;gap:8px}.row>div{flex:1}.check{display:flex;gap:8px;align-items:center;margin-top:10px}.check input{width:auto}" +
    ".actions{display:flex;justify-content:space-between;gap:8px;margin-top:16px}" +
    "button{font-size:15px;border-radius:8px;padding:10px 16px;cursor:pointer;border:1px solid var(--brand)}" +
    ".primary{background:var(--brand);color:var(--on-brand)}.secondary{background:#fff;color:#1f2937;border-color:#9ca3af}" +
    ".error{color:#b91c1c;font-size:14px;margin-top:8px;min-height:1em}.steps{font-size:12px;color:#4b5563;margin-bottom:4px}" +
    ".progress{height:6px;background:#e5e7eb;border-radius:999px;margin-bottom:12px;overflow:hidden}.progress>div{height:100%;background:var(--brand)}" +
    "fieldset{border:0;padding:0;margin:10px 0 0}legend{font-size:14px;padding:0;color:#111827}.hint{font-size:12px;color:#4b5563}" +
    ".estimate{font-size:22px;font-weight:600;margin:8px 0}.hp{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}";

  var host = document.createElement("div");
  host.setAttribute("data-leadtrail", "");
  var root = host.attachShadow({ mode: "open" });
  var style = document.createElement("style");
  style.textContent = CSS;
  root.appendChild(style);
  function brand() {
    host.style.setProperty("--brand", config.brand_color);
    host.style.setProperty("--on-brand", config.on_brand);
  }
  var launch = document.createElement("button");
  launch.className = "launch";
  launch.type = "button";
  launch.textContent = "Get a free roof estimate";
  root.appendChild(launch);

  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { e.appendChild(c); });
    return e;
  }
  function field(label, name, type, extra) {
    var id = "lt-" + name;
    var input = el("input", Object.assign({ id: id, name: name, type: type || "text" }, extra || {}));
    return el("div", {}, [el("label", { "for": id, text: label }), input]);
  }
  function select(label, name, options) {
    var id = "lt-" + name;
    var s = el("select", { id: id, name: name, required: "" });
    options.forEach(function (o) { s.appendChild(el("option", { value: o[0], text: o[1] })); });
    return el("div", {}, [el("label", { "for": id, text: label }), s]);
  }

  var STEPS = [
    { title: "Where is the property?", build: function () { return [
      field("Street address", "street", "text", { required: "", autocomplete: "street-address" }),
      el("div", { "class": "row" }, [field("City", "city", "text", { required: "", autocomplete: "address-level2" }),
        field("State", "state", "text", { required: "", autocomplete: "address-level1" })]),
      field("ZIP code", "postal_code", "text", { required: "", inputmode: "numeric", autocomplete: "postal-code" }),
      el("div", { "class": "hp", "aria-hidden": "true" }, [field("Company website", "company_website", "text", { tabindex: "-1", autocomplete: "off" })])
    ]; } },
    { title: "About the project", build: function () { return [
      select("What do you need?", "roof_type", [["replacement", "Roof replacement"], ["repair", "Repair"], ["new_construction", "New construction"], ["inspection", "Inspection"]]),
      select("Roof material", "material", [["asphalt_shingle", "Asphalt shingle"], ["metal", "Metal"], ["tile", "Tile"], ["slate", "Slate"], ["flat", "Flat / TPO"], ["wood_shake", "Wood shake"], ["unknown", "Not sure"]]),
      el("div", { "class": "row" }, [select("Stories", "stories", [["1", "1"], ["2", "2"], ["3", "3"], ["4", "4"]]),
        select("Roof pitch", "pitch", [["medium", "Average"], ["low", "Low"], ["steep", "Steep"], ["flat", "Flat"], ["unknown", "Not sure"]])]),
      select("How soon?", "urgency", [["emergency", "It's an emergency"], ["within_1_month", "Within a month"], ["within_3_months", "Within 3 months"], ["within_6_months", "Within 6 months"], ["researching", "Just researching"]]),
      field("Roof age in years (optional)", "roof_age_years", "number", { min: "0", max: "150" }),
      el("label", { "class": "check" }, [el("input", { type: "checkbox", name: "insurance_claim" }), document.createTextNode("This is an insurance claim")]),
      el("label", { "class": "check" }, [el("input", { type: "checkbox", name: "financing_interest" }), document.createTextNode("I'm interested in financing")])
    ]; } },
    { title: "Your instant estimate", build: function () { return [
      el("div", { "class": "row" }, [field("First name", "first_name", "text", { required: "", autocomplete: "given-name" }),
        field("Last name", "last_name", "text", { required: "", autocomplete: "family-name" })]),
      field("Email", "email", "email", { required: "", autocomplete: "email" }),
      field("Phone", "phone", "tel", { required: "", autocomplete: "tel" }),
      select("Do you live in this home?", "owner_occupied", [["true", "Yes, I own and live here"], ["false", "No, it's a rental or other property"]]),
      field("Home size in sq ft (optional)", "home_sqft", "number", { min: "300", max: "20000" })
    ].concat(config.self_report && config.self_report.enabled ? [heardAbout()] : []); } },
    { title: "How should we reach you?", optional: true, build: function () { return [
      select("Contact method", "contact_method", [["phone", "Phone call"], ["text", "Text message"], ["email", "Email"]]),
      select("Best time", "contact_time", [["anytime", "Anytime"], ["morning", "Morning"], ["afternoon", "Afternoon"], ["evening", "Evening"]])
    ]; } }
  ];

  // "How did you hear about us?" — optional; "Other" opens a short text box.
  function heardAbout() {
    var options = [["", "Choose one (optional)"]].concat(config.self_report.choices.map(function (c) { return [c, c]; }), [["Other", "Other"]]);
    var s = el("select", { id: "lt-heard_about", name: "heard_about" });
    options.forEach(function (o) { s.appendChild(el("option", { value: o[0], text: o[1] })); });
    var other = el("input", { id: "lt-heard_about_other", name: "heard_about_other", type: "text", maxlength: "50" });
    var otherField = el("div", { hidden: "" }, [el("label", { "for": "lt-heard_about_other", text: "Tell us where (up to 50 characters)" }), other]);
    s.addEventListener("change", function () { otherField.hidden = s.value !== "Other"; });
    return el("div", {}, [el("label", { "for": "lt-heard_about", text: "How did you hear about us?" }), s, otherField]);
  }

  var backdrop = null, current = 0, lastFocus = null, estimateText = "";

  function values(form) {
    var out = {};
    Array.prototype.forEach.call(form.elements, function (e) {
      if (!e.name) return;
      if (e.type === "checkbox") out[e.name] = e.checked;
      else if (e.value !== "") out[e.name] = e.value;
    });
    return out;
  }

  function render() {
    var step = STEPS[current];
    var error = el("div", { "class": "error", role: "alert" });
    var form = el("form", { novalidate: "" }, step.build());
    var label = "Step " + (current + 1) + " of " + STEPS.length;
    var bar = el("div", { "class": "progress", role: "progressbar", "aria-label": label, "aria-valuemin": "1",
      "aria-valuemax": String(STEPS.length), "aria-valuenow": String(current + 1) }, [el("div")]);
    bar.firstChild.style.width = Math.round((current + 1) / STEPS.length * 100) + "%";
    var dialog = el("div", { "class": "dialog", role: "dialog", "aria-modal": "true", "aria-labelledby": "lt-title" }, [
      el("div", { "class": "steps", text: label }), bar,
      el("h2", { id: "lt-title", text: step.title })
    ]);
    if (current === 2 || current === 3) dialog.appendChild(el("p", { text: estimateText || "Tell us who you are and we'll show your estimate right away." }));
    if (current === 3 && estimateText) dialog.lastChild.className = "estimate";
    dialog.appendChild(form);
    form.appendChild(error);
    var next = el("button", { type: "submit", "class": "primary", text: current === STEPS.length - 1 ? "Finish" : "Continue" });
    var close = el("button", { type: "button", "class": "secondary", text: step.optional ? "Skip" : "Close" });
    close.addEventListener("click", function () { if (step.optional) done(); else api.close(); });
    form.appendChild(el("div", { "class": "actions" }, [close, next]));
    var idem = uid();
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!form.checkValidity()) { error.textContent = "Please fill in the required fields."; form.reportValidity(); return; }
      next.disabled = true;
      error.textContent = "";
      submit(values(form), idem).then(function (res) {
        if (current === 2 && res.estimate) {
          var f = function (n) { return "$" + Number(n).toLocaleString("en-US"); };
          estimateText = "Estimated cost: " + f(res.estimate.price_low) + " – " + f(res.estimate.price_high);
        }
        if (current === STEPS.length - 1) done(); else { current += 1; render(); }
      }, function (err) {
        next.disabled = false;
        error.textContent = err.message || "Something went wrong.";
        var bad = err.field && form.querySelector("[name='" + String(err.field).replace(/^address\./, "") + "']");
        if (bad) bad.focus();
      });
    });
    backdrop.textContent = "";
    backdrop.appendChild(dialog);
    var firstInput = form.querySelector("input,select");
    if (firstInput) firstInput.focus();
  }

  function submit(v, idem) {
    if (current === 0) {
      var payload = body({ visitor_id: visitor, first_touch: first ? { v: first.v, s: first.s, at: first.at, utm: first.utm, referrer: first.referrer, page_url: first.page_url } : undefined,
        address: { street: v.street, city: v.city, state: v.state, postal_code: v.postal_code }, company_website: v.company_website });
      return send("POST", "/c/v1/leads", payload, idem).then(function (r) { lead = { id: r.lead_id, token: r.capture_token }; return r; });
    }
    var step;
    if (current === 1) step = { step: "project_details", roof_type: v.roof_type, material: v.material, stories: Number(v.stories), pitch: v.pitch,
      urgency: v.urgency, roof_age_years: v.roof_age_years ? Number(v.roof_age_years) : undefined, insurance_claim: !!v.insurance_claim, financing_interest: !!v.financing_interest };
    if (current === 2) step = { step: "personal_info", first_name: v.first_name, last_name: v.last_name, email: v.email, phone: v.phone,
      owner_occupied: v.owner_occupied === "true", home_sqft: v.home_sqft ? Number(v.home_sqft) : undefined,
      heard_about: v.heard_about ? { choice: v.heard_about, other: v.heard_about === "Other" ? v.heard_about_other : undefined } : undefined };
    if (current === 3) step = { step: "contact_preference", contact_method: v.contact_method, contact_time: v.contact_time };
    return send("PATCH", "/c/v1/leads/" + encodeURIComponent(lead.id), JSON.stringify(step), idem, lead.token);
  }

  function done() {
    backdrop.textContent = "";
    var ok = el("button", { type: "button", "class": "primary", text: "Close" });
    ok.addEventListener("click", api.close);
    backdrop.appendChild(el("div", { "class": "dialog", role: "dialog", "aria-modal": "true", "aria-labelledby": "lt-title" }, [
      el("h2", { id: "lt-title", text: "Thank you!" }),
      el("p", { text: (estimateText ? estimateText + ". " : "") + "We'll be in touch soon." }),
      el("div", { "class": "actions" }, [el("span"), ok])
    ]));
    ok.focus();
    lead = null; current = 0; estimateText = "";
  }

  var api = {
    open: function () {
      if (backdrop) return;
      lastFocus = document.activeElement;
      backdrop = el("div", { "class": "backdrop" });
      backdrop.addEventListener("keydown", function (e) { if (e.key === "Escape") api.close(); });
      root.appendChild(backdrop);
      if (!lead) current = 0;
      render();
    },
    close: function () {
      if (!backdrop) return;
      root.removeChild(backdrop);
      backdrop = null;
      if (lastFocus && lastFocus.focus) lastFocus.focus();
    }
  };
  launch.addEventListener("click", api.open);
  window.Leadtrail = api;

  function mount() {
    document.body.appendChild(host);
    if (params.get(OPEN_KEY) === OPEN_VALUE) api.open();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
