//! `kvmtune report`: a fleet of simulated hosts (the demo's test driver, each host with its
//! own temp `--root` and `--hostname`) planned with `plan --format json`, summarised in
//! Markdown and HTML (snapshots), and the HTML page opened in a real browser: Debian's
//! headless Chromium for the rendered DOM, and Chromium driven over WebDriver (chromedriver
//! on loopback) to click the table headers and read the order back. Fails, never skips,
//! without chromium / chromium-driver (scripts/env-up.sh installs them).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

fn data() -> PathBuf {
    repo().join("tests/data/report")
}

/// kvmtune on the demo driver as host `host` with its own root, in tests/data/report.
fn host_cmd(root: &Path, host: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kvmtune"));
    c.args(["--connect", &demo_uri(), "--hostname", host, "--root"])
        .arg(root)
        .args(args)
        .current_dir(data())
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// `plan --format json` of `config` (relative to tests/data/report, so error locations do
/// not name a temp directory) on a host of its own.
fn plan_json(root: &Path, host: &str, config: &str) -> String {
    let o = host_cmd(root, host, &["plan", "--format", "json", config])
        .output()
        .unwrap();
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{host}: {}",
        describe(&o)
    );
    out(&o)
}

/// Six hosts: two in sync (applied), one with a drifting sysctl, one with the demo's guest
/// drift (and a pin map), one whose guest is missing (a plan with errors), one whose file is
/// cut short. Returns the directory of `<host>.json` files.
fn fleet() -> tempfile::TempDir {
    let plans = tempfile::tempdir().unwrap();
    let demo = "../../../examples/demo/tuning.yaml";
    for (host, config, apply) in [
        ("hv-1", "host.yaml", true),
        ("hv-2", "host.yaml", true),
        ("hv-3", "host.yaml", false),
        ("hv-4", demo, false),
        ("hv-5", "missing-guest.yaml", false),
    ] {
        let root = demo_root();
        if apply {
            let o = host_cmd(root.path(), host, &["apply", "--auto-approve", config])
                .output()
                .unwrap();
            assert!(o.status.success(), "{host}: {}", describe(&o));
        }
        let json = plan_json(root.path(), host, config);
        std::fs::write(plans.path().join(format!("{host}.json")), &json).unwrap();
        if host == "hv-4" {
            let cut: String = json.chars().take(120).collect();
            std::fs::write(plans.path().join("hv-6.json"), cut).unwrap();
        }
    }
    std::fs::copy(
        data().join("hv-4.map.svg"),
        plans.path().join("hv-4.map.svg"),
    )
    .unwrap();
    std::fs::copy(
        data().join("not-a-map.svg"),
        plans.path().join("hv-3.map.svg"),
    )
    .unwrap();
    plans
}

fn report(plans: &Path, format: &str) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(["report", "--format", format])
        .arg(plans)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (o.status.code(), out(&o))
}

#[test]
fn fleet_report_markdown_and_html_snapshots() {
    let plans = fleet();
    let (code, md) = report(plans.path(), "markdown");
    assert_eq!(
        code,
        Some(1),
        "a failing host makes the report exit 1:\n{md}"
    );
    assert!(
        md.contains("6 hosts: 2 in sync, 2 drifting, 0 pending restart, 2 failing;"),
        "{md}"
    );
    insta::assert_snapshot!("fleet_markdown", md);
    let (code, html) = report(plans.path(), "html");
    assert_eq!(code, Some(1));
    // Self-contained: nothing is loaded from anywhere.
    for external in ["src=\"http", "href=\"http", "<link", "@import", "url("] {
        assert!(!html.contains(external), "{external}");
    }
    insta::assert_snapshot!("fleet_html", html);
    // The same files give the same bytes.
    assert_eq!(report(plans.path(), "html").1, html);
}

#[test]
fn report_exit_codes_and_bad_arguments() {
    let plans = fleet();
    for h in ["hv-3", "hv-4", "hv-5", "hv-6"] {
        std::fs::remove_file(plans.path().join(format!("{h}.json"))).unwrap();
    }
    assert_eq!(report(plans.path(), "markdown").0, Some(0));
    let o = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(["report", "/nonexistent/plans"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("/nonexistent/plans"), "{}", describe(&o));
    let empty = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .arg("report")
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no plan files"), "{}", describe(&o));
}

// ------------------------------------------------------------------ browser --

/// Chromium's binary (Debian's /usr/bin/chromium is a wrapper script around it).
fn chromium() -> &'static str {
    if Path::new("/usr/lib/chromium/chromium").exists() {
        "/usr/lib/chromium/chromium"
    } else {
        "chromium"
    }
}

fn html_file(dir: &Path) -> PathBuf {
    let plans = fleet();
    let (_, html) = report(plans.path(), "html");
    let page = dir.join("fleet.html");
    std::fs::write(&page, html).unwrap();
    page
}

#[test]
fn chromium_renders_the_table_and_the_pin_map() {
    let dir = tempfile::tempdir().unwrap();
    let page = html_file(dir.path());
    let o = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-crash-reporter",
            "--disable-breakpad",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .expect("chromium (apt-get install chromium; scripts/env-up.sh installs it)");
    assert!(o.status.success(), "{}", describe(&o));
    let dom = out(&o);
    // The script ran (it marks the body) and the table has one row per host, by name.
    assert!(dom.contains("<body data-sortable=\"yes\">"), "{dom}");
    let hosts: Vec<&str> = dom
        .split("<tr data-host=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(hosts, ["hv-1", "hv-2", "hv-3", "hv-4", "hv-5", "hv-6"]);
    assert!(dom.contains("<b data-count=\"failing\">2</b>"), "{dom}");
    assert!(
        dom.contains("Pin map not shown: not an SVG document"),
        "{dom}"
    );
    assert_eq!(dom.matches("<img class=\"map\"").count(), 1);
}

/// chromedriver on a loopback port it picks; killed on drop (after closing the session).
struct Driver {
    child: Child,
    port: u16,
    session: Option<String>,
    /// The browser chromedriver started for the session (ended by pid if it outlives it).
    browser: Option<i32>,
}

impl Driver {
    fn start() -> Driver {
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium-driver)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("chromedriver ended before saying its port")
                .unwrap();
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().parse().unwrap();
            }
        };
        // Keep reading its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Driver {
            child,
            port,
            session: None,
            browser: None,
        }
    }

    /// One WebDriver call; the response's `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        // chromedriver keeps the connection open: read the head, then Content-Length bytes.
        let mut r = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            assert!(
                r.read_line(&mut line).unwrap() > 0,
                "{method} {path}: no response"
            );
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no Content-Length: {head}"));
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let body = String::from_utf8_lossy(&body);
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "{method} {path}: {head}\n{v}"
        );
        v["value"].clone()
    }

    fn open(&mut self, url: &str, profile: &Path) {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--disable-crash-reporter",
                         "--disable-breakpad",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v = self.call("POST", "/session", Some(caps));
        self.session = Some(v["sessionId"].as_str().unwrap().to_string());
        self.browser = v["capabilities"]["goog:processID"]
            .as_u64()
            .map(|p| p as i32);
        self.call("POST", &self.path("url"), Some(json!({ "url": url })));
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}/{rest}", self.session.as_ref().unwrap())
    }

    fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            &self.path("execute/sync"),
            Some(json!({"script": js, "args": []})),
        )
    }

    /// Clicks the table header whose text is `heading` (a real click: WebDriver's pointer
    /// actions at the element's centre).
    fn click_heading(&self, heading: &str) {
        let xpath =
            format!("//table[@id='hosts']/thead/tr/th[normalize-space(text())='{heading}']");
        let el = self.call(
            "POST",
            &self.path("element"),
            Some(json!({"using": "xpath", "value": xpath})),
        );
        let id = el["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap()
            .to_string();
        self.call(
            "POST",
            &self.path(&format!("element/{id}/click")),
            Some(json!({})),
        );
    }

    /// The rows' hosts, top to bottom, as rendered.
    fn order(&self) -> Vec<String> {
        let v = self.script(
            "return Array.from(document.querySelectorAll('#hosts tbody tr')).map(r => r.dataset.host);",
        );
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &format!("/session/{s}"), None)
            }));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = self.browser {
            // SAFETY: kill(2) on the pid of the browser this test's chromedriver started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn clicking_a_header_sorts_the_table_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let page = html_file(dir.path());
    let mut d = Driver::start();
    d.open(
        &format!("file://{}", page.display()),
        &dir.path().join("profile"),
    );
    assert_eq!(d.order(), ["hv-1", "hv-2", "hv-3", "hv-4", "hv-5", "hv-6"]);
    // What the page shows: a visible table, the map decoded by the browser.
    let shown = d.script(
        "const t = document.getElementById('hosts').getBoundingClientRect();\
         const m = document.querySelector('img.map');\
         return [t.width > 0 && t.height > 0, m.complete && m.naturalWidth];",
    );
    assert_eq!(shown, json!([true, 320]), "table visible, map 320 px wide");

    // Changes, ascending (numerically; ties by host), then descending.
    d.click_heading("Changes");
    let changes = d.script(
        "return Array.from(document.querySelectorAll('#hosts tbody tr')).map(r => Number(r.cells[2].textContent));",
    );
    let changes: Vec<u64> = serde_json::from_value(changes).unwrap();
    assert_eq!(changes, [0, 0, 0, 2, 2, 26], "{:?}", d.order());
    assert_eq!(d.order(), ["hv-1", "hv-2", "hv-6", "hv-3", "hv-5", "hv-4"]);
    let sorted = d.script(
        "return Array.from(document.querySelectorAll('#hosts th')).map(h => h.getAttribute('aria-sort'));",
    );
    assert_eq!(sorted[2], json!("ascending"));
    d.click_heading("Changes");
    assert_eq!(d.order(), ["hv-4", "hv-5", "hv-3", "hv-6", "hv-2", "hv-1"]);

    // Status: worst first.
    d.click_heading("Status");
    assert_eq!(d.order(), ["hv-5", "hv-6", "hv-3", "hv-4", "hv-1", "hv-2"]);
    // Host, back to the name order.
    d.click_heading("Host");
    assert_eq!(d.order(), ["hv-1", "hv-2", "hv-3", "hv-4", "hv-5", "hv-6"]);
}
