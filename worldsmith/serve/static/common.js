// Shared by the pages: the token (from ?token= in the page's address), API calls with JSON errors.
"use strict";
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");

function withToken(url) {
  if (!TOKEN) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (TOKEN) headers["Authorization"] = "Bearer " + TOKEN;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const type = response.headers.get("content-type") || "";
  const body = type.includes("application/json") ? await response.json() : null;
  if (!response.ok) {
    const error = new Error((body && body.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.retryAfter = Number(response.headers.get("Retry-After") || 0);
    throw error;
  }
  return body;
}

async function uploadFile(file) {
  return api("/api/uploads", { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
}

function $(id) { return document.getElementById(id); }

document.querySelectorAll("a[data-keep-token]").forEach((a) => { a.href = withToken(a.getAttribute("href")); });
