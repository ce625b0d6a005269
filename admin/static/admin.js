// mailroom admin: the condition builder, the live preview, "Check Connection / Retrieve Folders".
"use strict";

const csrf = () => document.body.dataset.csrf;

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok && !data.errors) throw new Error(data.error || response.statusText);
  return data;
}

function showError(form, name, text) {
  const box = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
  if (box) box.textContent = text || "";
  const field = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
  if (field) field.classList.toggle("has-error", Boolean(text));
}

// -- confirmations -------------------------------------------------------------------------------------
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// -- the mailbox form ----------------------------------------------------------------------------------
function setupMailbox(form) {
  const kind = form.querySelector('[name="processing.type"]');
  const sync = () => form.querySelectorAll(".processing").forEach((part) => {
    part.hidden = part.dataset.processing !== kind.value;
  });
  kind.addEventListener("change", sync);
  sync();

  const button = document.getElementById("check-connection");
  const status = document.getElementById("check-status");
  const steps = document.getElementById("check-steps");
  const folders = document.getElementById("folders");
  const value = (name) => (form.querySelector(`[name="${CSS.escape(name)}"]`) || {}).value || "";
  const part = (name) => ({
    host: value(`${name}.host`), port: value(`${name}.port`), security: value(`${name}.security`),
    username: value(`${name}.username`), password: value(`${name}.password`),
    verify_certificates: form.querySelector(`[name="${name}.verify_certificates"]`).checked,
  });
  button.addEventListener("click", async () => {
    for (const name of ["imap.host", "imap.port", "imap.security", "imap.username", "imap.password",
      "smtp.host", "smtp.port", "smtp.security", "smtp.username", "smtp.password", "folders"]) {
      showError(form, name, "");
    }
    status.textContent = "checking ...";
    status.className = "check-status";
    steps.textContent = "";
    button.disabled = true;
    try {
      const ticked = [...form.querySelectorAll('input[name="folders"]:checked')].map((box) => box.value);
      const data = await postJson("/api/check", {
        mailbox_id: form.dataset.mailbox || null, organization: value("organization"),
        imap: part("imap"), smtp: part("smtp"), folders: ticked,
      });
      for (const [name, text] of Object.entries(data.errors || {})) showError(form, name, text);
      for (const report of [data.imap, data.smtp]) {
        if (!report) continue;
        for (const step of report.steps) {
          const item = document.createElement("li");
          item.className = step.ok ? "ok" : "failed";
          item.textContent = `${report.summary.split(" ")[0].toUpperCase()} ${step.name}: ${step.detail} (${step.ms} ms)`;
          steps.appendChild(item);
        }
      }
      if (data.imap && data.imap.folders.length) {
        const have = new Set([...folders.querySelectorAll("input")].map((box) => box.value));
        for (const folder of data.imap.folders) {
          if (have.has(folder.name)) continue;
          const label = document.createElement("label");
          label.className = "folder";
          const box = document.createElement("input");
          box.type = "checkbox"; box.name = "folders"; box.value = folder.name;
          label.append(box, ` ${folder.name}${folder.role ? " (" + folder.role + ")" : ""}`);
          folders.appendChild(label);
        }
      }
      status.textContent = data.ok ? "Connection works: tick the folders to read" : "Connection failed";
      status.className = "check-status " + (data.ok ? "ok" : "failed");
    } catch (error) {
      status.textContent = `Check failed: ${error.message}`;
      status.className = "check-status failed";
    } finally {
      button.disabled = false;
    }
  });
}

// -- the rule form -------------------------------------------------------------------------------------
const NO_VALUE = new Set(["is_empty", "is_not_empty", "is_true", "is_false"]);
const HINTS = {
  is_any_of: "values, comma-separated", is_not_any_of: "values, comma-separated",
  matches_regex: "regular expression (RE2)", does_not_match_regex: "regular expression (RE2)",
  before: "date, e.g. 2024-05-01", after: "date, e.g. 2024-05-01",
};

function setupRule(form) {
  const fields = JSON.parse(document.getElementById("condition-fields").textContent);
  const named = JSON.parse(document.getElementById("named-templates").textContent);
  const list = document.getElementById("conditions");
  const blank = document.getElementById("condition-row");

  const fitRow = (row) => {
    const field = row.querySelector(".c-field").value;
    const operator = row.querySelector(".c-operator");
    const wanted = operator.value || operator.dataset.value;
    const ops = fields[field] || [];
    if ([...operator.options].map((o) => o.value).join() !== ops.join()) {
      operator.textContent = "";
      for (const op of ops) operator.add(new Option(op.replaceAll("_", " "), op, false, op === wanted));
    }
    row.querySelector(".c-header").hidden = field !== "header";
    const value = row.querySelector(".c-value");
    value.hidden = NO_VALUE.has(operator.value);
    value.type = ["before", "after"].includes(operator.value) ? "date" : "text";
    value.placeholder = HINTS[operator.value] || "value";
    row.querySelector(".c-case").hidden = ["has_attachments", "received"].includes(field);
  };
  const renumber = () => [...list.children].forEach((row, index) => {
    row.dataset.index = index;
    row.querySelector(".c-field").name = `conditions.${index}.field`;
    row.querySelector(".c-header").name = `conditions.${index}.header`;
    row.querySelector(".c-operator").name = `conditions.${index}.operator`;
    row.querySelector(".c-value").name = `conditions.${index}.value`;
    row.querySelector(".c-case input").name = `conditions.${index}.case_sensitive`;
    row.querySelector(".error").dataset.errorFor = `conditions.${index}`;
  });
  list.addEventListener("change", (event) => {
    const row = event.target.closest(".condition");
    if (row) fitRow(row);
  });
  list.addEventListener("click", (event) => {
    if (!event.target.classList.contains("remove")) return;
    event.target.closest(".condition").remove();
    renumber();
  });
  document.getElementById("add-condition").addEventListener("click", () => {
    const row = blank.content.firstElementChild.cloneNode(true);
    list.appendChild(row);
    fitRow(row);
    renumber();
    row.querySelector(".c-field").focus();
  });
  [...list.children].forEach(fitRow);
  renumber();

  const choice = form.querySelector('[name="template_choice"]');
  const kind = form.querySelector('[name="template.type"]');
  const subject = form.querySelector('[name="template.subject"]');
  const body = form.querySelector('[name="template.body"]');
  const syncChoice = () => {
    const chosen = named[choice.value];
    for (const input of [kind, subject, body]) input.readOnly = Boolean(chosen);
    kind.disabled = Boolean(chosen);
    if (chosen) { kind.value = chosen.type; subject.value = chosen.subject; body.value = chosen.body; }
    preview();
  };
  choice.addEventListener("change", syncChoice);

  let timer = null;
  const frame = document.getElementById("preview-html");
  const plain = document.getElementById("preview-plain");
  const preview = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try {
        const data = await postJson("/api/preview", {
          mailbox_id: form.dataset.mailbox, type: kind.value, subject: subject.value, body: body.value,
          rule_name: form.querySelector('[name="name"]').value,
        });
        document.getElementById("preview-error").textContent = data.error || "";
        document.getElementById("preview-subject").textContent = data.subject || "";
        frame.hidden = data.type !== "html" || Boolean(data.error);
        plain.hidden = data.type === "html" || Boolean(data.error);
        if (data.type === "html") frame.srcdoc = data.body || ""; else plain.textContent = data.body || "";
      } catch (error) {
        document.getElementById("preview-error").textContent = error.message;
      }
    }, 250);
  };
  for (const input of [kind, subject, body]) input.addEventListener("input", preview);
  kind.addEventListener("change", preview);
  if (named[choice.value]) syncChoice(); else preview();
  form.addEventListener("submit", () => { kind.disabled = false; renumber(); });
}

document.addEventListener("DOMContentLoaded", () => {
  const mailbox = document.getElementById("mailbox-form");
  if (mailbox) setupMailbox(mailbox);
  const rule = document.getElementById("rule-form");
  if (rule) setupRule(rule);
});
