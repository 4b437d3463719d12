//! A small Chrome DevTools Protocol driver for the browser test: headless Chromium started with
//! `--remote-debugging-pipe` (its fds 3 and 4 are this process's pipes to its stdin and stdout,
//! through `bash`), JSON messages separated by NUL bytes, one page target in flat session mode.
//! Clicks and typing are real input events (`Input.dispatchMouseEvent`, `Input.insertText`).
#![allow(dead_code)]

use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// A running headless Chromium driven over the DevTools pipe.
pub struct Browser {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    next_id: u64,
}

/// One page (tab) of a [`Browser`], attached in flat mode.
pub struct Page {
    session: String,
}

impl Browser {
    /// Starts `bin` headless with its profile in `profile`.
    pub async fn launch(bin: &Path, profile: &Path) -> Browser {
        let script = "exec \"$0\" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
             --no-first-run --hide-scrollbars --window-size=1400,1000 \
             --user-data-dir=\"$1\" --remote-debugging-pipe 3<&0 4>&1 0</dev/null 1>&2";
        let mut child = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg(bin)
            .arg(profile)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium started");
        let to = child.stdin.take().unwrap();
        let from = BufReader::new(child.stdout.take().unwrap());
        Browser {
            child,
            to,
            from,
            next_id: 0,
        }
    }

    /// Sends `method` (to `session`'s target when given) and returns its `result`; events
    /// arriving meanwhile are dropped. Panics on a protocol error or after 30 s.
    pub async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).await.unwrap();
        self.to.flush().await.unwrap();
        let read = async {
            loop {
                let mut buf = Vec::new();
                let n = self.from.read_until(0, &mut buf).await.unwrap();
                assert!(n > 0, "chromium closed its DevTools pipe during {method}");
                buf.pop();
                let m: Value = serde_json::from_slice(&buf).unwrap();
                if m["id"] == json!(id) {
                    return m;
                }
            }
        };
        let m = tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .unwrap_or_else(|_| panic!("no answer to {method} within 30 s"));
        assert!(m.get("error").is_none(), "{method} failed: {m}");
        m["result"].clone()
    }

    /// Opens `url` in a new page and attaches to it.
    pub async fn open(&mut self, url: &str) -> Page {
        let t = self
            .call(None, "Target.createTarget", json!({"url": url}))
            .await;
        let s = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": t["targetId"], "flatten": true}),
            )
            .await;
        Page {
            session: s["sessionId"].as_str().unwrap().to_owned(),
        }
    }

    /// Evaluates `expr` in `page` (awaiting a promise) and returns its value.
    pub async fn eval(&mut self, page: &Page, expr: &str) -> Value {
        let r = self
            .call(
                Some(&page.session),
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expr} threw: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` every 50 ms until it is truthy (as `!!`); fails after 30 s.
    pub async fn wait_for(&mut self, page: &Page, expr: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if self.eval(page, &format!("!!({expr})")).await == json!(true) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {expr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the middle of the element `selector` with the mouse (press and release).
    pub async fn click(&mut self, page: &Page, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let r = self
            .eval(
                page,
                &format!(
                    "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
                     e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                     return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
                ),
            )
            .await;
        let xy = r
            .as_array()
            .unwrap_or_else(|| panic!("no element {selector} to click"));
        let (x, y) = (xy[0].as_f64().unwrap(), xy[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                Some(&page.session),
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Types `text` into the focused element.
    pub async fn type_text(&mut self, page: &Page, text: &str) {
        self.call(
            Some(&page.session),
            "Input.insertText",
            json!({"text": text}),
        )
        .await;
    }

    /// A PNG screenshot of `page`.
    pub async fn screenshot(&mut self, page: &Page) -> Vec<u8> {
        use base64::Engine as _;
        let r = self
            .call(
                Some(&page.session),
                "Page.captureScreenshot",
                json!({"format": "png"}),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap()
    }

    /// Closes the browser and waits for it to exit.
    pub async fn close(mut self) {
        self.call(None, "Browser.close", json!({})).await;
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}
