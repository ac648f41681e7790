//! Headless Chromium driven over WebDriver (chromedriver on loopback), for tests that look
//! at a page as a reader's browser renders it.

pub use fantoccini::Locator;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use crate::loopback::{self, LoopbackServer};

/// A browser session, its chromedriver killed on drop.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    _profile: tempfile::TempDir,
    _driver: LoopbackServer,
}

impl Browser {
    /// Chromium (`$CHROMIUM`, else `chromium` on `PATH`) through chromedriver
    /// (`$CHROMEDRIVER`, else on `PATH`), headless, in a fresh profile, `width` × `height`.
    pub async fn start(width: u32, height: u32) -> Self {
        let missing = |what: &str| {
            panic!(
                "{what} not found: the browser tests need Debian's chromium and chromium-driver. \
                 Run the README's test command (bash .ci/run), which installs them, or \
                 `apt-get install chromium chromium-driver`"
            )
        };
        let chromium =
            loopback::program("CHROMIUM", "chromium").unwrap_or_else(|| missing("chromium"));
        let chromedriver = loopback::program("CHROMEDRIVER", "chromedriver")
            .unwrap_or_else(|| missing("chromedriver"));
        let driver = LoopbackServer::start(&chromedriver, |port| vec![format!("--port={port}")]);
        let profile = tempfile::tempdir().expect("a profile folder");
        // The closed network refuses Chromium's background connections: turn them off.
        let options = json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--no-first-run", "--disable-sync",
                "--disable-component-update", format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        let mut capabilities = Capabilities::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let client = ClientBuilder::rustls()
            .expect("a WebDriver client")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a Chromium session");
        Self {
            client,
            _profile: profile,
            _driver: driver,
        }
    }
}
