//! An in-process API server for tests (this crate's and other components'): listens on
//! 127.0.0.1 port 0 with a fresh temporary data dir and hands out clients.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::{start, Config, Running};

pub struct TestServer {
    running: Option<Running>,
    shutdown: CancellationToken,
    dir: PathBuf,
    /// Keeps the temporary directory alive while the server runs.
    _tmp: Option<TempDir>,
}

/// A temporary directory removed on drop (no dependency on the tempfile crate here).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TestServer {
    /// Starts a server with a fresh data dir.
    pub async fn start() -> TestServer {
        let dir = std::env::temp_dir().join(format!(
            "skiff-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let mut s = TestServer::start_in(&dir).await;
        s._tmp = Some(TempDir(dir));
        s
    }

    /// Starts a server with a fresh data dir and the given store options (e.g. a tiny
    /// event window to exercise compaction).
    pub async fn start_with(store: crate::store::StoreOptions) -> TestServer {
        let dir = std::env::temp_dir().join(format!(
            "skiff-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let mut s = TestServer::start_config(&dir, store).await;
        s._tmp = Some(TempDir(dir));
        s
    }

    /// Starts a server over an existing data dir (to test restarts).
    pub async fn start_in(dir: &Path) -> TestServer {
        TestServer::start_config(dir, crate::store::StoreOptions::default()).await
    }

    async fn start_config(dir: &Path, store: crate::store::StoreOptions) -> TestServer {
        let shutdown = CancellationToken::new();
        let config = Config {
            data_dir: dir.to_path_buf(),
            listen: vec!["127.0.0.1:0".parse().expect("addr")],
            store,
            ..Config::default()
        };
        let running = start(config, shutdown.clone())
            .await
            .expect("test server starts");
        TestServer {
            running: Some(running),
            shutdown,
            dir: dir.to_path_buf(),
            _tmp: None,
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("server is running")
    }

    /// `https://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.running().url
    }

    pub fn token(&self) -> &str {
        &self.running().token
    }

    /// The secret half of the join token.
    pub fn join_secret(&self) -> &str {
        &self.running().join_secret
    }

    pub fn ca_pem(&self) -> &str {
        &self.running().ca_pem
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.running().kubeconfig
    }

    /// A `kube::Client` with admin credentials.
    #[cfg(any(test, feature = "testing"))]
    pub async fn client(&self) -> kube::Client {
        let text = std::fs::read_to_string(self.kubeconfig_path()).expect("kubeconfig");
        let kc = kube::config::Kubeconfig::from_yaml(&text).expect("kubeconfig parses");
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("kube config");
        kube::Client::try_from(cfg).expect("kube client")
    }

    /// Stops the server and waits until its store is closed. The data dir stays as long
    /// as this value lives (or for good, with `start_in`).
    pub async fn shutdown(mut self) -> Option<PathBuf> {
        self.stop().await;
        Some(self.dir.clone())
    }

    /// Stops the server, keeping this value (and its temp dir) for a restart.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(r) = self.running.take() {
            r.wait().await;
        }
    }

    /// Starts again over the same data dir.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut fresh = TestServer::start_in(&self.dir).await;
        // Take the new server's token out of `fresh`, whose Drop cancels the token it
        // holds at that point.
        self.shutdown = std::mem::take(&mut fresh.shutdown);
        self.running = fresh.running.take();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
