// The operator page of syncjob-facade.
//
// Sign-in: the OAuth 2.0 authorization code flow with PKCE (S256), as an Entra single-page
// application. The verifier, state and nonce wait in sessionStorage while the browser is at the
// sign-in page and are removed when it comes back; the access token lives in this module's
// memory only (never in storage, a URL or a log) and goes to the facade's own routes as the
// bearer. Reloading the page forgets it.
//
// Everything shown comes from the facade's job reads; a start shows the `whatIf` report first.
// The page decides nothing: every refusal is the API's, put into words. Text from the network
// is only ever set as textContent.

const API = "/v1.0";
const PENDING = "syncjob-facade.sign-in";
const POLL_EVERY_MS = 2000;
const POLL_FOR_MS = 120000;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A service principal as configured or typed: `<guid>` (its object id; an appId is tried when no
 * service principal has that id) or `appId=<guid>` (its application's appId). */
const PRINCIPAL = /^(appid=)?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

const $ = (id) => document.getElementById(id);

let settings = null;
/** `{ token, expiresAt, name, timer }` while signed in. */
let session = null;
/** Every group on the page, by the id it was opened with. */
const groups = new Map();
/** The card whose preview is open or being asked for: one at a time. */
let previewing = null;

class SignedOut extends Error {}

// ---------- small helpers ----------

function base64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(bytes) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** The payload of a JWT, without checking its signature (the ID token comes straight from the
 * token endpoint; only its nonce is used). */
function jwtPayload(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

function time(value) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const sameDay = date.toDateString() === new Date().toDateString();
  const clock = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return sameDay ? clock : `${date.toLocaleDateString()} ${clock}`;
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  const rest = s % 60;
  if (m < 60) return rest ? `${m} min ${rest} s` : `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** The page-wide message. The element stays rendered (empty, it takes no room) so that screen
 * readers announce what appears in it. */
function notice(text, ok = false) {
  const element = $("notice");
  element.textContent = text;
  element.classList.toggle("ok", ok);
}

function redirectUri() {
  return location.origin + location.pathname;
}

function scopes() {
  return ["openid", "profile", ...settings.scopes].join(" ");
}

// ---------- sign-in ----------

async function signIn() {
  const verifier = randomText(48);
  const state = randomText(24);
  const nonce = randomText(24);
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, nonce }));
  const url = new URL(`${settings.authority}/oauth2/v2.0/authorize`);
  url.search = new URLSearchParams({
    client_id: settings.clientId,
    response_type: "code",
    response_mode: "fragment",
    redirect_uri: redirectUri(),
    scope: scopes(),
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

/** Back from the sign-in page: checks state, redeems the code with the verifier, checks the
 * nonce. The answer is taken out of the address bar first, whatever it holds. */
async function completeSignIn() {
  const answer = new URLSearchParams(location.hash.slice(1));
  if (!answer.has("code") && !answer.has("error")) return;
  history.replaceState(null, "", location.pathname + location.search);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? "null");
  sessionStorage.removeItem(PENDING);
  if (!pending || answer.get("state") !== pending.state) {
    notice("This sign-in answer was not requested by this page (its state does not match), so it was ignored. Sign in again.");
    return;
  }
  if (answer.has("error")) {
    notice(`Sign-in did not complete: ${answer.get("error_description") || answer.get("error")}`);
    return;
  }
  let response;
  try {
    response = await fetch(`${settings.authority}/oauth2/v2.0/token`, {
      method: "POST",
      body: new URLSearchParams({
        client_id: settings.clientId,
        grant_type: "authorization_code",
        code: answer.get("code"),
        redirect_uri: redirectUri(),
        code_verifier: pending.verifier,
        scope: scopes(),
      }),
    });
  } catch {
    notice("The sign-in service could not be reached. Check your connection and sign in again.");
    return;
  }
  const tokens = await response.json().catch(() => ({}));
  if (!response.ok || !tokens.access_token) {
    notice(`Sign-in failed: ${tokens.error_description || tokens.error || `HTTP ${response.status}`}`);
    return;
  }
  const id = jwtPayload(tokens.id_token ?? "");
  const problem = idTokenProblem(id, pending.nonce);
  if (problem) {
    notice(`The sign-in answer failed its ${problem} check, so it was not used. Sign in again.`);
    return;
  }
  const expiresAt = Date.now() + Number(tokens.expires_in || 3600) * 1000;
  startSession(tokens.access_token, expiresAt, id.name || id.preferred_username || "you");
}

/** What is wrong with the ID token's claims for this sign-in, or null. Its signature is not
 * checked here: it came straight from the token endpoint over the connection the page opened,
 * and the facade validates the access token it is given. */
function idTokenProblem(id, nonce) {
  if (!id) return "ID token";
  if (id.nonce !== nonce) return "nonce";
  if (id.aud !== settings.clientId) return "audience";
  if (typeof id.exp !== "number" || id.exp * 1000 < Date.now()) return "expiry";
  // A tenant's authority (not `organizations` or `common`) names the issuer exactly.
  const tenant = settings.authority.split("/").pop();
  if (GUID.test(tenant) && id.iss !== `${settings.authority}/v2.0`) return "issuer";
  return null;
}

function startSession(token, expiresAt, name) {
  const timer = setTimeout(
    () => endSession(`Your sign-in expired at ${time(new Date(expiresAt))}. Sign in again to go on.`),
    Math.min(Math.max(expiresAt - Date.now(), 0), 2 ** 31 - 1),
  );
  session = { token, expiresAt, name, timer };
  notice("");
  $("who-name").textContent = `Signed in as ${name}`;
  show();
  for (const id of settings.servicePrincipals) openGroup(id);
}

/** Forgets the token and everything read with it. `refused`: the service turned the token down,
 * so no start sent with it can have reached Graph. */
function endSession(message, ok = false, refused = false) {
  if (session) clearTimeout(session.timer);
  session = null;
  const inFlight = refused
    ? []
    : [...groups.values()].flatMap((g) => [...g.cards.values()]).filter((c) => c.sending);
  for (const group of groups.values()) group.close();
  groups.clear();
  $("groups").replaceChildren();
  previewing = null;
  if ($("preview").open) $("preview").close("cancel");
  const unknown = inFlight.map((c) => c.name).join(", ");
  notice(unknown
    ? `${message} A start of ${unknown} was on its way: whether it reached Microsoft Graph is not known here. Look at the job after signing in again.`
    : message, ok);
  show();
}

function show() {
  $("signed-out").hidden = Boolean(session);
  $("signed-in").hidden = !session;
  $("who").hidden = !session;
  if (!session) $("sign-in").focus();
}

// ---------- the API ----------

async function api(method, path, headers = {}) {
  const current = session;
  if (!current) throw new SignedOut();
  let response;
  try {
    response = await fetch(API + path, {
      method,
      cache: "no-store",
      headers: { Authorization: `Bearer ${current.token}`, ...headers },
    });
  } catch {
    if (session !== current) throw new SignedOut();
    return { status: 0, ok: false, headers: new Headers(), body: null };
  }
  // Signed out (or in again) while this was on its way: the answer belongs to nobody here.
  if (session !== current) throw new SignedOut();
  if (response.status === 401) {
    endSession("The service no longer accepts your sign-in (it expired or was revoked). Sign in again to go on.", false, true);
    throw new SignedOut();
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  return { status: response.status, ok: response.ok, headers: response.headers, body };
}

function retryAfter(answer) {
  const value = answer.headers.get("Retry-After");
  if (!value) return null;
  const seconds = Number(value);
  return Number.isFinite(seconds) ? seconds : Math.max(0, (Date.parse(value) - Date.now()) / 1000);
}

/** A refusal or failure in words, with what would allow the action. */
function explain(answer) {
  if (answer.status === 0) return "The service could not be reached. Check your connection and try again.";
  const error = answer.body?.error ?? {};
  const message = error.message || `The service answered HTTP ${answer.status}.`;
  const wait = retryAfter(answer);
  const later = wait === null ? "later" : `in ${duration(wait)} (at ${time(new Date(Date.now() + wait * 1000))})`;
  switch (error.code) {
    case "Authorization_RequestDenied":
      return `Not allowed for ${session?.name ?? "you"}. ${message} An administrator can give you what is missing: the permission on this page's Entra registration, or the directory role.`;
    case "SyncJobStartCooldown":
      return `This job was started a short while ago; the next start is allowed ${later}. The cooldown keeps a job from being restarted over and over. ${message}`;
    case "SyncJobAlreadyActive":
      return `The job is running already, so a start would not help. Wait until it finishes, then start it if it is still needed. (${message})`;
    case "TooManyRequests":
      return `You have sent too many requests in a short time. Try again ${later}.`;
    case "ServiceUnavailable":
      return `The service cannot take this now (${message}) Try again ${later}.`;
    case "BadGateway":
    case "GatewayTimeout":
      return `Microsoft Graph did not answer in time (${message}) A start may still have reached it: look at the job's status before trying again.`;
    default:
      return message;
  }
}

// ---------- groups and cards ----------

class Group {
  constructor(id, byAppId) {
    this.id = id;
    this.byAppId = byAppId;
    this.base = null;
    this.cards = new Map();
    this.element = document.createElement("section");
    this.element.className = "group";
    this.heading = document.createElement("h2");
    this.heading.textContent = `Service principal ${id}`;
    this.status = document.createElement("p");
    this.status.className = "hint";
    this.status.setAttribute("role", "status");
    this.status.textContent = "Reading its jobs…";
    this.list = document.createElement("div");
    this.element.append(this.heading, this.status, this.list);
  }

  async load() {
    const byApp = `/servicePrincipals(appId='${this.id}')/synchronization/jobs`;
    let base = this.byAppId ? byApp : `/servicePrincipals/${this.id}/synchronization/jobs`;
    let answer = await api("GET", base);
    if (answer.status === 404 && !this.byAppId) {
      // Not a service principal's object id: perhaps its application's appId.
      const second = await api("GET", byApp);
      if (second.status !== 404) {
        answer = second;
        base = byApp;
      }
    }
    if (base === byApp) {
      this.heading.textContent = "";
      const small = document.createElement("small");
      small.textContent = ` (appId ${this.id})`;
      this.heading.append("Application's service principal", small);
    }
    if (!answer.ok) {
      this.fail(answer.status === 404
        ? `No service principal has the object id or appId ${this.id}.`
        : explain(answer));
      return;
    }
    this.base = base;
    this.update(answer.body);
  }

  /** Reads the list again: the cards show what Graph and the guard say now. */
  async refresh() {
    if (!this.base) return this.load();
    const answer = await api("GET", this.base);
    if (answer.ok) this.update(answer.body);
  }

  update(list) {
    const jobs = Array.isArray(list?.value) ? list.value : [];
    if (this.failure) {
      this.failure = null;
      this.status.setAttribute("role", "status");
      showFailures();
    }
    this.status.className = "hint";
    this.status.hidden = jobs.length > 0;
    this.status.textContent = "This service principal has no provisioning jobs.";
    const seen = new Set();
    for (const job of jobs) {
      seen.add(job.id);
      const card = this.cards.get(job.id);
      if (card) {
        if (!card.polling) card.show(job);
      } else {
        const added = new Card(this, job);
        this.cards.set(job.id, added);
        this.list.append(added.element);
      }
    }
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) {
        card.close();
        card.element.remove();
        this.cards.delete(id);
      }
    }
  }

  fail(text) {
    this.failure = text;
    this.status.hidden = false;
    this.status.className = "error";
    this.status.setAttribute("role", "alert");
    showFailures();
  }

  close() {
    for (const card of this.cards.values()) card.close();
  }
}

class Card {
  constructor(group, job) {
    this.group = group;
    this.id = job.id;
    this.path = `${group.base}/${encodeURIComponent(job.id)}`;
    this.etag = null;
    this.busy = false;
    this.polling = false;
    this.sending = false;
    /** The Idempotency-Key of a start whose answer was not definitive, reused when retried. */
    this.startKey = null;
    this.timers = new Set();
    this.cooldownEnd = null;
    this.element = $("job-template").content.firstElementChild.cloneNode(true);
    this.element.tabIndex = -1;
    this.button = this.element.querySelector(".start");
    this.message = this.element.querySelector(".job-message");
    this.button.addEventListener("click", () => this.preview());
    this.show(job);
  }

  get name() {
    return this.job.templateId || this.id;
  }

  field(name) {
    return this.element.querySelector(`.${name}`);
  }

  show(job) {
    this.job = job;
    const status = job.status ?? {};
    this.field("job-name").textContent = this.name;
    const badge = this.field("badge");
    badge.textContent = status.code ?? "Unknown";
    badge.className = `badge ${status.code ?? ""}`;
    this.field("job-id").textContent = job.id;
    const last = status.lastExecution;
    this.field("last-execution").textContent = last
      ? [
        [last.state, last.timeEnded ? `ended ${time(last.timeEnded)}` : last.timeBegan ? `began ${time(last.timeBegan)}` : ""]
          .filter(Boolean).join(", "),
        last.error?.message,
      ].filter(Boolean).join(": ")
      : "None recorded";
    const quarantine = status.quarantine;
    this.field("quarantine").textContent = quarantine
      ? [
        `${quarantine.error?.message || quarantine.reason}${quarantine.reason ? ` (${quarantine.reason})` : ""}`,
        quarantine.currentBegan ? `since ${time(quarantine.currentBegan)}` : "",
        quarantine.nextAttempt ? `Entra tries again at ${time(quarantine.nextAttempt)}` : "",
      ].filter(Boolean).join("; ")
      : "None";
    const lastStart = job["@syncjob.lastStart"];
    this.field("last-start").textContent = lastStart ? `${time(lastStart.at)} by ${lastStart.caller}` : "None";
    this.refreshButton();
  }

  /** Disabled while busy or while the guard's cooldown runs, with the time it ends. */
  refreshButton() {
    const allowedAt = this.job["@syncjob.startAllowedAt"];
    const until = allowedAt ? new Date(allowedAt) : null;
    const cooling = until && until.getTime() > Date.now();
    this.field("allowed").textContent = cooling ? `${time(until)} (cooldown after the last start)` : "Now";
    this.button.disabled = this.busy || Boolean(cooling);
    this.button.textContent = cooling ? `Start allowed at ${time(until)}` : "Start…";
    this.button.setAttribute("aria-label", cooling ? `Start ${this.name}: allowed at ${time(until)}` : `Start ${this.name}`);
    clearTimeout(this.cooldownEnd);
    if (cooling) this.cooldownEnd = this.later(() => this.refreshButton(), until.getTime() - Date.now() + 250);
  }

  later(action, ms) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      action();
    }, Math.min(ms, 2 ** 31 - 1));
    this.timers.add(timer);
    return timer;
  }

  close() {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  say(text, bad = false) {
    if (this.message.textContent !== text) this.message.textContent = text;
    this.message.classList.toggle("bad", bad);
  }

  setBusy(busy) {
    this.busy = busy;
    this.refreshButton();
  }

  /** Reads the job again (a 304 when nothing changed). */
  async reread() {
    const answer = await api("GET", this.path, this.etag ? { "If-None-Match": this.etag } : {});
    if (answer.status === 200 && answer.body) {
      this.etag = answer.headers.get("ETag");
      this.show(answer.body);
    }
    return answer;
  }

  async preview() {
    // One preview at a time: the dialog must show the job its Start button will start.
    if (previewing || this.busy) return;
    previewing = this;
    this.setBusy(true);
    this.say("Asking the service what a start would do…");
    try {
      const answer = await api("POST", `${this.path}/start?whatIf=true`);
      this.say("");
      if (previewing === this) openPreview(this, answer);
    } catch (error) {
      if (!(error instanceof SignedOut)) throw error;
    } finally {
      if (previewing === this && !$("preview").open) previewing = null;
      this.setBusy(false);
    }
  }

  /** Sends the start; `before` is the status the whatIf report's preflight read. */
  async start(before) {
    const from = {
      code: before ?? this.job.status?.code ?? "Unknown",
      began: this.job.status?.lastExecution?.timeBegan ?? null,
    };
    this.setBusy(true);
    this.say("Sending the start…");
    this.startKey ??= crypto.randomUUID();
    this.sending = true;
    let answer;
    try {
      answer = await api("POST", `${this.path}/start`, { "Idempotency-Key": this.startKey });
    } catch (error) {
      if (!(error instanceof SignedOut)) throw error;
      return;
    } finally {
      this.sending = false;
    }
    if (answer.status === 204 || answer.status === 200) {
      this.startKey = null;
      this.say(`Sent. Waiting for ${from.code} to change…`);
      this.polling = true;
      this.poll(from, Date.now());
      return;
    }
    const unknown = answer.status === 0 || answer.status === 502 || answer.status === 504;
    if (!unknown) this.startKey = null;
    this.say(unknown
      ? `${explain(answer)} Starting again is safe: it is sent as the same start.`
      : explain(answer), true);
    this.setBusy(false);
    // A refusal may mean the page's view is old (someone else started the job): read it again.
    this.reread().catch(() => {});
  }

  /** Reads the job until its status code (or its last execution) is no longer what it was. */
  async poll(from, since) {
    let answer;
    try {
      answer = await this.reread();
    } catch (error) {
      if (error instanceof SignedOut) return;
      throw error;
    }
    const done = (text, bad = false) => {
      this.polling = false;
      this.say(text, bad);
      this.setBusy(false);
    };
    if (answer.status !== 200 && answer.status !== 304) {
      done(`${explain(answer)} The start was sent; the status could not be read.`, true);
      return;
    }
    const now = this.job.status?.code ?? "Unknown";
    const began = this.job.status?.lastExecution?.timeBegan ?? null;
    if (now !== from.code) {
      done(`Status changed: ${from.code} → ${now}.`);
    } else if (began !== from.began) {
      done(`A new run began (status ${now}).`);
    } else if (Date.now() - since > POLL_FOR_MS) {
      done(`Graph accepted the start; the job still shows ${now} after ${duration(POLL_FOR_MS / 1000)}. Read it again later.`);
    } else {
      this.later(() => this.poll(from, since), POLL_EVERY_MS);
    }
  }
}

/** Each refusal in full once, from the top: a group below with the same one says so briefly. */
function showFailures() {
  const shown = new Set();
  for (const group of groups.values()) {
    if (!group.failure) continue;
    group.status.textContent = shown.has(group.failure)
      ? "Refused for the same reason as above."
      : group.failure;
    shown.add(group.failure);
  }
}

/** Opens the group of a service principal (`<guid>` or `appId=<guid>`), once. */
function openGroup(text) {
  const [, appId, guid] = PRINCIPAL.exec(text.trim());
  const id = guid.toLowerCase();
  const key = appId ? `appId=${id}` : id;
  const existing = groups.get(key);
  if (existing) {
    existing.element.scrollIntoView({ block: "nearest" });
    return;
  }
  const group = new Group(id, Boolean(appId));
  groups.set(key, group);
  $("groups").append(group.element);
  group.load().catch((error) => {
    if (!(error instanceof SignedOut)) throw error;
  });
}

// ---------- the whatIf preview ----------

function fact(list, name, value) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value;
  list.append(dt, dd);
  return dd;
}

function openPreview(card, answer) {
  const facts = $("preview-facts");
  facts.replaceChildren();
  const refusal = $("preview-refusal");
  const confirm = $("preview-confirm");
  const report = answer.status === 200 ? answer.body : null;
  $("preview-title").textContent = `Start ${card.name}?`;
  card.preflight = null;
  if (!report) {
    $("preview-summary").textContent = "The service would refuse this start; nothing would be sent.";
    refusal.textContent = explain(answer);
    refusal.hidden = false;
    confirm.hidden = true;
  } else {
    const target = report.target ?? {};
    fact(facts, "Job", target.synchronizationJobId);
    fact(facts, "Service principal", target.appId ? `${target.servicePrincipalId} (appId ${target.appId})` : target.servicePrincipalId);
    fact(facts, "Sent to Graph", `${report.request?.method} ${report.request?.url}`).className = "mono";
    const caller = report.caller ?? {};
    fact(facts, "As", `${caller.name ?? caller.objectId} (${caller.kind})`);
    const grant = report.authorization?.grant ?? {};
    fact(facts, "Allowed by", `${grant.permission ?? grant.grant}${report.authorization?.ownershipChecked ? ", as an owner" : ""}`);
    const preflight = report.preflight ?? {};
    card.preflight = preflight.status ?? null;
    fact(facts, "Preflight read", preflight.enabled ? `status now ${preflight.status ?? "unknown"}` : "off");
    const guard = report.guard ?? {};
    fact(facts, "Cooldown", guard.cooldownRemainingSecs ? `${duration(guard.cooldownRemainingSecs)} left` : "none running");
    if (report.wouldStart) {
      $("preview-summary").textContent = "The service would send this start. Nothing has been sent yet.";
      refusal.hidden = true;
      confirm.hidden = false;
    } else {
      $("preview-summary").textContent = "The service would refuse this start; nothing would be sent.";
      const r = report.refusal ?? {};
      refusal.textContent = explain({
        status: r.status,
        body: { error: { code: r.code, message: r.message } },
        headers: new Headers(guard.cooldownRemainingSecs ? { "Retry-After": String(guard.cooldownRemainingSecs) } : {}),
      });
      refusal.hidden = false;
      confirm.hidden = true;
    }
  }
  // Escape closes the dialog without setting a value: the last one must not count.
  $("preview").returnValue = "";
  $("preview").showModal();
  (confirm.hidden ? $("preview-cancel") : confirm).focus();
}

function closedPreview() {
  const card = previewing;
  previewing = null;
  if (!card || !session) return;
  if ($("preview").returnValue === "confirm") {
    // The button is disabled while the start runs: the keyboard stays on its card.
    card.element.focus();
    card.start(card.preflight);
  } else {
    card.button.focus();
    // What the report said may be newer than the card (someone else started the job).
    card.reread().catch(() => {});
  }
}

async function refreshAll() {
  await Promise.all([...groups.values()].map((group) => group.refresh().catch((error) => {
    if (!(error instanceof SignedOut)) throw error;
  })));
}

// ---------- wiring ----------

async function main() {
  const response = await fetch("/ui/settings.json", { cache: "no-store" });
  settings = await response.json();
  $("sign-in").addEventListener("click", () => {
    signIn().catch(() => notice("Sign-in could not begin in this browser (it needs Web Crypto over https or localhost)."));
  });
  $("sign-out").addEventListener("click", () =>
    endSession("You are signed out of this page. Its token is forgotten; your Entra session in this browser is unchanged.", true));
  $("preview").addEventListener("close", closedPreview);
  $("refresh").addEventListener("click", () => refreshAll());
  $("lookup").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("lookup-id");
    const error = $("lookup-error");
    const value = input.value.trim();
    if (!PRINCIPAL.test(value)) {
      error.textContent = "Type a service principal's object id or its application's appId: a GUID such as 2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d, or appId=<GUID> to name an appId.";
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    error.hidden = true;
    input.removeAttribute("aria-invalid");
    input.value = "";
    openGroup(value);
  });
  await completeSignIn();
  show();
}

main();
