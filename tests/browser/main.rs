//! The operator page in a real browser: Debian's headless `chromium`, driven through
//! `chromedriver`, against `syncjob-facade dev` started as a person starts it (the built binary,
//! its printed `/ui` address, the emulator's sign-in page). Screenshots go to the target
//! directory, or with `SYNCJOB_UPDATE_SCREENSHOTS=1` to `docs/screenshots/`, where the README
//! shows them.
//!
//! CI installs chromium and chromium-driver and sets `SYNCJOB_REQUIRE_BROWSER=1`: there a
//! missing browser fails the tests; elsewhere they are skipped with a notice.

mod webdriver;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use webdriver::{Browser, Driver, ENTER};

const ADA: &str = "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e";
const RITA: &str = "c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f";
const SALESFORCE_JOB: &str =
    "salesforce.8a3c9c1e6f0b4b7e9d552f1e7c0a4b13.2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d";
const RUNNING_JOB: &str = "ServiceNowRunning.1";
const NOT_RUN_JOB: &str = "AD2AADProvisioning.fd1c9b9e8077402c8bc03a7186c8f976";
const GAIL: &str = "e4f5a6b7-c8d9-4e0a-9b1c-2d3e4f5a6b7c";
/// Counts layout shifts not caused by input from now on, in `window.shifts`.
const COUNT_SHIFTS: &str = "window.shifts = 0; new PerformanceObserver(list => { for (const e of list.getEntries()) if (!e.hadRecentInput) window.shifts += e.value; }).observe({type: 'layout-shift'});";
/// How many job reads were answered 304 Not Modified.
const NOT_MODIFIED_READS: &str = "return performance.getEntriesByType('resource').filter(e => e.name.includes('/synchronization/jobs/') && e.responseStatus === 304).length";
/// Jobs of the three seeded service principals the dev configuration lists.
const SEEDED_JOBS: usize = 5;

/// `syncjob-facade dev` on a free port, killed when dropped.
struct Dev {
    child: Child,
    page: String,
    emulator: String,
    /// The administrator's token `dev` prints, for starts from outside the page.
    admin_token: String,
}

impl Dev {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_syncjob-facade"))
            .args(["dev", "--port", "0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("syncjob-facade dev starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut page, mut emulator, mut admin_token) = (None, None, None);
        while page.is_none() || admin_token.is_none() {
            let line = lines
                .next()
                .expect("dev prints its banner")
                .expect("readable output");
            if let Some(rest) = line.split_once("with the Graph + Entra emulator on ") {
                emulator = Some(rest.1.trim().to_owned());
            }
            if let Some(rest) = line.trim().strip_prefix("export ADMIN_TOKEN='") {
                admin_token = rest.split('\'').next().map(str::to_owned);
            }
            if line.trim_start().starts_with("http://") && line.trim_end().ends_with("/ui") {
                page = Some(line.trim().to_owned());
            }
        }
        // Keep reading, so that the banner's pipe never fills.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            page: page.unwrap(),
            emulator: emulator.expect("the banner names the emulator"),
            admin_token: admin_token.unwrap(),
        }
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    /// The facade's address (the page's without `/ui`).
    fn base(&self) -> &str {
        self.page.trim_end_matches("/ui")
    }

    /// A call to the emulator's control API, `/_emulator/{path}`.
    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request =
            Self::http().request(method, format!("{}/_emulator/{path}", self.emulator));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// Started jobs begin to run `ms` later.
    async fn start_delay(&self, ms: u64) {
        let response = self
            .control(
                reqwest::Method::PUT,
                "start-delay",
                Some(json!({"milliseconds": ms})),
            )
            .await;
        assert_eq!(response.status(), 204);
    }

    /// Graph's `operation` (`start`, `getJob`, ...) answers `ms` later.
    async fn delay(&self, operation: &str, ms: u64) {
        let fault = self
            .control(
                reqwest::Method::POST,
                "faults",
                Some(json!({"operation": operation, "delayMs": ms})),
            )
            .await;
        assert!(fault.status().is_success());
    }

    /// The starts Graph received.
    async fn starts(&self) -> Vec<Value> {
        let mut calls = self.graph_calls().await;
        calls.retain(|c| c["operation"] == "start");
        calls
    }

    /// The Graph operations the emulator has recorded (`start`, `getJob`, `listJobs`, ...).
    async fn graph_calls(&self) -> Vec<Value> {
        let calls: Value = self
            .control(reqwest::Method::GET, "calls", None)
            .await
            .json()
            .await
            .unwrap();
        calls["calls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|call| {
                matches!(
                    call["operation"].as_str(),
                    Some("start" | "getJob" | "listJobs" | "resolveAppId" | "owners")
                )
            })
            .cloned()
            .collect()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Option<Driver> {
    let driver = Driver::start();
    if driver.is_none() {
        assert!(
            std::env::var_os("SYNCJOB_REQUIRE_BROWSER").is_none(),
            "SYNCJOB_REQUIRE_BROWSER is set but chromedriver is not installed"
        );
        eprintln!(
            "NOTICE: chromedriver not found; skipping a browser test (CI installs chromium and chromium-driver and sets SYNCJOB_REQUIRE_BROWSER=1)"
        );
    }
    driver
}

fn save_screenshot(name: &str, png: &[u8]) {
    let dir = if std::env::var_os("SYNCJOB_UPDATE_SCREENSHOTS").is_some() {
        concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots")
    } else {
        concat!(env!("CARGO_TARGET_TMPDIR"), "/screenshots")
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/{name}"), png).unwrap();
}

/// Opens the page, follows "Sign in" to the emulator's sign-in page and picks `user`.
async fn sign_in(browser: &Browser, dev: &Dev, user: &str, screenshot: Option<&str>) {
    browser.goto(&dev.page).await;
    let button = browser.find("#sign-in").await;
    browser
        .wait_for(
            "the sign-in button",
            "return !document.getElementById('signed-out').hidden",
            10,
        )
        .await;
    browser.click(&button).await;
    let pick = browser.find(&format!("button[value='{user}']")).await;
    if let Some(name) = screenshot {
        save_screenshot(name, &browser.screenshot().await);
    }
    browser.click(&pick).await;
    browser
        .wait_for(
            "the page signed in",
            "return !document.getElementById('who').hidden && document.getElementById('who-name').textContent",
            10,
        )
        .await;
}

/// The card of a job, as a selector.
fn card(job: &str) -> String {
    format!(
        "(() => [...document.querySelectorAll('article.job')].find(a => a.querySelector('.job-id').textContent === {}))()",
        json!(job)
    )
}

/// Clicks the Start button of a job's card.
async fn click_start(browser: &Browser, job: &str) {
    browser
        .run(
            &format!("{}.querySelector('.start').click()", card(job)),
            json!([]),
        )
        .await;
}

/// Waits until the jobs of every configured service principal are listed.
async fn wait_for_every_job(browser: &Browser) {
    browser
        .wait_for(
            "every seeded job listed",
            &format!("return document.querySelectorAll('article.job').length === {SEEDED_JOBS}"),
            15,
        )
        .await;
}

/// A browser signed in as `user` on a fresh `dev`, every job listed; `None` without a browser.
async fn signed_in(user: &str) -> Option<(Driver, Dev, Browser)> {
    let driver = driver()?;
    let dev = Dev::start();
    let browser = driver.session(1280, 900).await;
    sign_in(&browser, &dev, user, None).await;
    wait_for_every_job(&browser).await;
    Some((driver, dev, browser))
}

/// The browser reported nothing wrong but the facade's 403s.
async fn assert_only_refusals_in_console(browser: &Browser) {
    let console = browser.console().await;
    for (_, message) in severe(&console) {
        assert!(message.contains("status of 403"), "{message}");
    }
}

fn severe(console: &[(String, String)]) -> Vec<&(String, String)> {
    console
        .iter()
        .filter(|(level, _)| level == "SEVERE")
        .collect()
}

#[tokio::test]
async fn an_administrator_signs_in_previews_and_starts_the_paused_job_by_keyboard() {
    let Some(driver) = driver() else { return };
    let dev = Dev::start();
    let browser = driver.session(1280, 900).await;

    // An answer that this page did not ask for is refused and taken out of the address bar.
    browser
        .goto(&format!("{}#code=forged&state=forged", dev.page))
        .await;
    let refused = browser
        .wait_for(
            "the forged answer refused",
            "return document.getElementById('notice').textContent",
            10,
        )
        .await;
    assert!(
        refused.as_str().unwrap().contains("state does not match"),
        "{refused}"
    );
    assert!(!browser.current_url().await.contains("code="));
    save_screenshot("signed-out.png", &browser.screenshot().await);

    sign_in(&browser, &dev, ADA, Some("sign-in.png")).await;
    let who = browser
        .run(
            "return document.getElementById('who-name').textContent",
            json!([]),
        )
        .await;
    assert_eq!(who, "Signed in as Ada Admin");
    assert!(
        !browser.current_url().await.contains("code="),
        "the code is taken out of the address bar"
    );
    let storage = browser
        .run(
            "return [localStorage.length, sessionStorage.length, document.cookie]",
            json!([]),
        )
        .await;
    assert_eq!(
        storage,
        json!([0, 0, ""]),
        "the token is kept in memory only"
    );

    // The jobs of the configured service principals, with what the reads say.
    wait_for_every_job(&browser).await;
    let salesforce = card(SALESFORCE_JOB);
    let shown = browser
        .run(
            &format!(
                "const c = {salesforce}; return [c.querySelector('.badge').textContent, c.querySelector('.allowed').textContent, c.querySelector('.start').disabled]"
            ),
            json!([]),
        )
        .await;
    assert_eq!(shown, json!(["Paused", "Now", false]));
    let quarantine = browser
        .run(
            "return [...document.querySelectorAll('article.job .quarantine')].map(q => q.textContent).join('|')",
            json!([]),
        )
        .await;
    assert!(
        quarantine
            .as_str()
            .unwrap()
            .contains("rejected its credentials"),
        "{quarantine}"
    );
    save_screenshot("jobs.png", &browser.screenshot().await);
    let reads_before_start = dev.graph_calls().await;
    assert!(
        reads_before_start.iter().all(|c| c["operation"] != "start"),
        "nothing started by reading: {reads_before_start:?}"
    );

    // Keyboard only: focus Start, Enter opens the whatIf report, Enter confirms.
    browser
        .run(
            &format!("{salesforce}.querySelector('.start').focus()"),
            json!([]),
        )
        .await;
    browser.press(ENTER).await;
    browser
        .wait_for(
            "the whatIf report",
            "return document.getElementById('preview').open",
            10,
        )
        .await;
    let report = browser
        .run(
            "return [document.getElementById('preview').innerText, document.activeElement.id]",
            json!([]),
        )
        .await;
    let text = report[0].as_str().unwrap();
    assert!(text.contains("would send this start"), "{text}");
    assert!(text.contains("status now Paused"), "{text}");
    assert!(
        text.contains(&format!("synchronization/jobs/{SALESFORCE_JOB}/start")),
        "{text}"
    );
    assert!(text.contains("Synchronization.ReadWrite.All"), "{text}");
    assert_eq!(report[1], "preview-confirm", "Start has the focus");
    assert!(dev.starts().await.is_empty(), "the preview sends nothing");
    save_screenshot("preview.png", &browser.screenshot().await);

    // The job begins to run 2.5 s after Graph accepts the start, so the page polls (and its
    // unchanged reads are 304s); layout shifts from here on, not caused by input, are counted.
    dev.start_delay(2500).await;
    browser.run(COUNT_SHIFTS, json!([])).await;
    browser.press(ENTER).await;
    let message = browser
        .wait_for(
            "the status change",
            &format!(
                "const c = {salesforce}; return c.querySelector('.job-message').textContent.startsWith('Status changed') && c.querySelector('.job-message').textContent"
            ),
            20,
        )
        .await;
    assert!(
        message.as_str().unwrap().contains("Paused → Active"),
        "{message}"
    );
    let after = browser
        .run(
            &format!(
                "const c = {salesforce}; const b = c.querySelector('.start'); return [c.querySelector('.badge').textContent, b.disabled, b.textContent, c.querySelector('.last-start').textContent, document.activeElement === c, window.shifts]"
            ),
            json!([]),
        )
        .await;
    assert_eq!(after[0], "Active");
    assert_eq!(after[1], true, "Start is disabled during the cooldown");
    assert!(
        after[2].as_str().unwrap().starts_with("Start allowed at "),
        "{after}"
    );
    assert!(
        after[3].as_str().unwrap().ends_with("by Ada Admin"),
        "{after}"
    );
    assert_eq!(after[4], true, "the keyboard stays on the card");
    assert_eq!(after[5], json!(0), "no layout shift while polling");
    let unchanged = browser.run(NOT_MODIFIED_READS, json!([])).await;
    assert!(
        unchanged.as_u64().unwrap() >= 1,
        "polling read the job with If-None-Match: {unchanged}"
    );
    save_screenshot("started.png", &browser.screenshot().await);
    let starts: Vec<Value> = dev.starts().await;
    assert_eq!(starts.len(), 1, "one start reached Graph: {starts:?}");
    assert!(starts[0]["path"].as_str().unwrap().contains(SALESFORCE_JOB));

    // A running job: the preview says why a start would be refused, and offers no Start.
    click_start(&browser, RUNNING_JOB).await;
    browser
        .wait_for(
            "the refusal preview",
            "return document.getElementById('preview').open",
            10,
        )
        .await;
    let refusal = browser
        .run(
            "return [document.getElementById('preview-refusal').textContent, document.getElementById('preview-confirm').hidden]",
            json!([]),
        )
        .await;
    assert!(
        refusal[0].as_str().unwrap().contains("running already"),
        "{refusal}"
    );
    assert_eq!(refusal[1], true);
    browser.press("\u{E00C}").await; // Escape
    browser
        .wait_for(
            "the preview closed",
            "return !document.getElementById('preview').open",
            5,
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let starts = dev.starts().await.len();
    assert_eq!(starts, 1, "Escape sends nothing");

    // Started by someone else since the page read it: the preview says when a start is allowed.
    let quarantined =
        "ServiceNowOutDelta.8a3c9c1e6f0b4b7e9d552f1e7c0a4b13.4a1b2c3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
    let started = Dev::http()
        .post(format!(
            "{}/v1.0/servicePrincipals/4a1b2c3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d/synchronization/jobs/{quarantined}/start",
            dev.base()
        ))
        .bearer_auth(&dev.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 204);
    click_start(&browser, quarantined).await;
    let cooldown = browser
        .wait_for(
            "the cooldown explained",
            "return document.getElementById('preview').open && document.getElementById('preview-refusal').textContent",
            10,
        )
        .await;
    let cooldown = cooldown.as_str().unwrap();
    assert!(
        cooldown.contains("the next start is allowed in 4 min")
            || cooldown.contains("the next start is allowed in 5 min"),
        "{cooldown}"
    );
    browser.press("\u{E00C}").await;

    // A typed id that is no GUID is explained before anything is sent.
    let input = browser.find("#lookup-id").await;
    browser
        .send_keys(&input, &format!("not-a-guid{ENTER}"))
        .await;
    let error = browser
        .run(
            "return document.getElementById('lookup-error').textContent",
            json!([]),
        )
        .await;
    assert!(error.as_str().unwrap().contains("GUID"), "{error}");
    // `appId=<guid>` names the application's appId, read through Graph's alternate key.
    browser
        .run("document.getElementById('lookup-id').value = ''", json!([]))
        .await;
    browser
        .send_keys(
            &input,
            &format!("appId=7c6b5a49-3827-4165-9e0d-c1b2a3f4e5d6{ENTER}"),
        )
        .await;
    let by_app = browser
        .wait_for(
            "the jobs read by appId",
            "const all = document.querySelectorAll('.group'); const g = all[all.length - 1]; return all.length === 4 && g.querySelector('article.job') && [g.querySelector('h2').textContent, g.querySelector('.job-id').textContent]",
            10,
        )
        .await;
    assert_eq!(
        by_app,
        json!([
            "Application's service principal (appId 7c6b5a49-3827-4165-9e0d-c1b2a3f4e5d6)",
            SALESFORCE_JOB
        ])
    );

    // Phone width: nothing wider than the screen, and the same start without a layout shift.
    browser.viewport(320, 720, true).await;
    let widths = browser
        .run(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]",
            json!([]),
        )
        .await;
    assert_eq!(
        widths,
        json!([320, 320]),
        "no horizontal scrolling at 320 px"
    );
    let provisioning = card(NOT_RUN_JOB);
    browser
        .run(&format!("{provisioning}.scrollIntoView()"), json!([]))
        .await;
    browser.run(COUNT_SHIFTS, json!([])).await;
    click_start(&browser, NOT_RUN_JOB).await;
    browser
        .wait_for(
            "the phone's preview",
            "return document.getElementById('preview').open",
            10,
        )
        .await;
    browser.press(ENTER).await;
    browser
        .wait_for(
            "the status change at 320 px",
            &format!("return {provisioning}.querySelector('.job-message').textContent.startsWith('Status changed')"),
            20,
        )
        .await;
    let shifts = browser.run("return window.shifts", json!([])).await;
    assert_eq!(shifts, json!(0), "no layout shift while polling at 320 px");
    save_screenshot("phone.png", &browser.screenshot().await);
    browser.viewport(1280, 900, false).await;

    let console = browser.console().await;
    assert!(severe(&console).is_empty(), "console errors: {console:?}");

    // The Content-Security-Policy refuses a script injected into the page, whether through a
    // sink that Trusted Types guard or as a text node that only script-src can stop.
    let injected = browser
        .run(
            "window.injected = false; window.violations = []; \
             document.addEventListener('securitypolicyviolation', e => window.violations.push(e.violatedDirective)); \
             try { const s = document.createElement('script'); s.textContent = 'window.injected = true'; document.head.append(s); } catch (e) { window.violations.push('threw: ' + e.name); } \
             const t = document.createElement('script'); t.append(document.createTextNode('window.injected = true')); document.head.append(t); \
             return window.injected",
            json!([]),
        )
        .await;
    assert_eq!(injected, false, "an injected script must not run");
    let violations = browser
        .wait_for(
            "the CSP violation report",
            "return window.violations.length > 0 && window.violations",
            5,
        )
        .await;
    let reported: Vec<&str> = violations
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        reported
            .iter()
            .any(|v| v.starts_with("script-src") || v.starts_with("require-trusted-types-for")),
        "{violations}"
    );
    let console = browser.console().await;
    assert!(
        console
            .iter()
            .any(|(_, message)| message.contains("Content Security Policy")
                || message.contains("requires 'TrustedScript' assignment")),
        "{console:?}"
    );

    // Signing out forgets the token.
    browser.click(&browser.find("#sign-out").await).await;
    let state = browser
        .run(
            "return [document.getElementById('signed-in').hidden, document.querySelectorAll('article.job').length, document.getElementById('notice').textContent]",
            json!([]),
        )
        .await;
    assert_eq!(state[0], true);
    assert_eq!(state[1], 0);
    assert!(state[2].as_str().unwrap().contains("signed out"), "{state}");
    browser.quit().await;
}

#[tokio::test]
async fn a_user_without_a_role_sees_the_refusal_explained_and_nothing_reaches_graph() {
    let Some(driver) = driver() else { return };
    let dev = Dev::start();
    let browser = driver.session(1280, 900).await;
    let before = dev.graph_calls().await;

    sign_in(&browser, &dev, RITA, None).await;
    let errors = browser
        .wait_for(
            "the refusals",
            "const e = [...document.querySelectorAll('.group .error')]; return e.length === 3 && e.map(x => x.textContent)",
            15,
        )
        .await;
    let errors: Vec<&str> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let first = errors[0];
    assert!(first.starts_with("Not allowed for Rita Reader."), "{first}");
    assert!(first.contains("Global Reader"), "names the roles: {first}");
    assert!(first.contains("the token has []"), "{first}");
    assert_eq!(
        errors[1..],
        ["Refused for the same reason as above."; 2],
        "said once"
    );
    assert_eq!(
        browser
            .run(
                "return document.querySelectorAll('article.job').length",
                json!([])
            )
            .await,
        0
    );
    save_screenshot("refused.png", &browser.screenshot().await);
    assert_eq!(
        dev.graph_calls().await.len(),
        before.len(),
        "nothing reached Graph"
    );
    // The browser reports each refused read; nothing else went wrong.
    assert_only_refusals_in_console(&browser).await;
    browser.quit().await;
}

#[tokio::test]
async fn an_expired_sign_in_is_said_in_words_and_its_token_forgotten() {
    let Some(driver) = driver() else { return };
    let dev = Dev::start();
    let shortened = dev
        .control(
            reqwest::Method::PUT,
            "sign-in-lifetime",
            Some(json!({"seconds": 3})),
        )
        .await;
    assert_eq!(shortened.status(), 204);
    let browser = driver.session(1280, 900).await;
    sign_in(&browser, &dev, ADA, None).await;
    let notice = browser
        .wait_for(
            "the expiry notice",
            "return document.getElementById('signed-in').hidden && document.getElementById('notice').textContent",
            10,
        )
        .await;
    assert!(
        notice
            .as_str()
            .unwrap()
            .starts_with("Your sign-in expired at "),
        "{notice}"
    );
    let left = browser
        .run(
            "return [document.querySelectorAll('article.job').length, document.getElementById('signed-out').hidden]",
            json!([]),
        )
        .await;
    assert_eq!(left, json!([0, false]), "nothing read with the token stays");
    browser.quit().await;
}

#[tokio::test]
async fn a_global_reader_sees_the_jobs_and_a_start_refused_in_words_before_anything_is_sent() {
    let Some((_driver, dev, browser)) = signed_in(GAIL).await else {
        return;
    };
    click_start(&browser, SALESFORCE_JOB).await;
    let refusal = browser
        .wait_for(
            "the refusal",
            "return document.getElementById('preview').open && !document.getElementById('preview-refusal').hidden && [document.getElementById('preview-refusal').textContent, document.getElementById('preview-confirm').hidden, document.getElementById('preview-title').textContent]",
            10,
        )
        .await;
    let text = refusal[0].as_str().unwrap();
    assert!(
        text.starts_with("Not allowed for Gail Global Reader."),
        "{text}"
    );
    assert!(
        text.contains("Application Administrator"),
        "names the roles that may start: {text}"
    );
    assert_eq!(refusal[1], true, "no Start to confirm");
    assert_eq!(refusal[2], "Start salesforce?");
    save_screenshot("reader-refused.png", &browser.screenshot().await);
    assert!(dev.starts().await.is_empty(), "nothing started");
    assert_only_refusals_in_console(&browser).await;
    browser.quit().await;
}

#[tokio::test]
async fn while_one_preview_is_asked_for_another_start_button_does_not_replace_it() {
    let Some((_driver, dev, browser)) = signed_in(ADA).await else {
        return;
    };
    // The whatIf's preflight read of the first job takes 1.5 s; meanwhile the person clicks
    // another job's Start.
    dev.delay("getJob", 1500).await;
    let quarantined =
        "ServiceNowOutDelta.8a3c9c1e6f0b4b7e9d552f1e7c0a4b13.4a1b2c3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
    for job in [quarantined, SALESFORCE_JOB] {
        click_start(&browser, job).await;
    }
    let title = browser
        .wait_for(
            "the first job's preview",
            "return document.getElementById('preview').open && document.getElementById('preview-title').textContent",
            10,
        )
        .await;
    assert_eq!(title, "Start ServiceNowOutDelta?");
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let still = browser
        .run(
            "return [document.getElementById('preview-title').textContent, document.getElementById('preview-facts').textContent.includes('salesforce')]",
            json!([]),
        )
        .await;
    assert_eq!(
        still,
        json!(["Start ServiceNowOutDelta?", false]),
        "the dialog still names the job it starts"
    );
    browser.press(ENTER).await;
    browser
        .wait_for(
            "the start of the job the dialog named",
            &format!(
                "return {}.querySelector('.job-message').textContent.startsWith('Status changed')",
                card(quarantined)
            ),
            15,
        )
        .await;
    let starts: Vec<Value> = dev.starts().await;
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert!(starts[0]["path"].as_str().unwrap().contains(quarantined));
    browser.quit().await;
}

#[tokio::test]
async fn a_token_the_service_stops_accepting_ends_the_session_in_words() {
    let Some((_driver, dev, browser)) = signed_in(ADA).await else {
        return;
    };
    // Entra retires the key that signed the page's token; a token signed with the new key makes
    // the facade fetch the keys again, and the page's token no longer validates.
    let rotated = dev
        .control(reqwest::Method::POST, "keys/rotate?retireOld=true", None)
        .await;
    assert!(rotated.status().is_success());
    let fresh: Value = dev
        .control(
            reqwest::Method::POST,
            "tokens",
            Some(json!({"kind": "app", "clientId": "0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"})),
        )
        .await
        .json()
        .await
        .unwrap();
    let base = dev.base();
    let read = Dev::http()
        .get(format!(
            "{base}/v1.0/servicePrincipals/2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d/synchronization/jobs"
        ))
        .bearer_auth(fresh["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200, "the facade knows the new key");

    browser.click(&browser.find("#refresh").await).await;
    let notice = browser
        .wait_for(
            "the refusal of the old token",
            "return document.getElementById('signed-in').hidden && document.getElementById('notice').textContent",
            10,
        )
        .await;
    assert!(
        notice
            .as_str()
            .unwrap()
            .starts_with("The service no longer accepts your sign-in"),
        "{notice}"
    );
    assert_eq!(
        browser
            .run(
                "return document.querySelectorAll('article.job').length",
                json!([])
            )
            .await,
        0
    );
    browser.quit().await;
}

#[tokio::test]
async fn signing_out_while_a_start_is_on_its_way_says_its_outcome_is_not_known() {
    let Some((_driver, dev, browser)) = signed_in(ADA).await else {
        return;
    };
    click_start(&browser, SALESFORCE_JOB).await;
    browser
        .wait_for(
            "the preview",
            "return document.getElementById('preview').open && !document.getElementById('preview-confirm').hidden",
            10,
        )
        .await;
    // Graph takes 2 s to answer this start; the person signs out meanwhile.
    dev.delay("start", 2000).await;
    browser.press(ENTER).await;
    browser
        .wait_for(
            "the start on its way",
            &format!(
                "return {}.querySelector('.job-message').textContent === 'Sending the start…'",
                card(SALESFORCE_JOB)
            ),
            5,
        )
        .await;
    browser.click(&browser.find("#sign-out").await).await;
    let notice = browser
        .run(
            "return document.getElementById('notice').textContent",
            json!([]),
        )
        .await;
    let notice = notice.as_str().unwrap();
    assert!(
        notice.starts_with("You are signed out of this page."),
        "{notice}"
    );
    assert!(
        notice.contains("A start of salesforce was on its way: whether it reached Microsoft Graph is not known here."),
        "{notice}"
    );
    browser.quit().await;
}
