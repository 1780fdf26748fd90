//! `skiff exec POD [-c C] [-i] [-t] -- CMD...`: runs a command in a container through
//! the API server's `pods/exec` websocket (see [`super::channel`]). Local stdin goes to
//! stream 0 (`-i`), streams 1 and 2 come back to stdout and stderr, the Status on
//! stream 3 gives the exit code that `skiff` then exits with. With `-t` on a terminal,
//! the terminal is put in raw mode (restored on every exit path) and its size is sent
//! at start and on each SIGWINCH.

use std::io::Write;

use anyhow::bail;
use clap::Args;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::channel::{self, Outcome, RemoteExit};
use super::client::Ctx;
use super::config::KubeFlags;

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// POD, pod/NAME, deploy/NAME, svc/NAME ...
    pub target: String,
    /// Container name (default: the pod's default or only container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY: raw mode and terminal size.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The `pods/exec` query: every command word, the container, and which streams to open.
/// With a TTY stderr is merged into stdout by the runtime, so it is not asked for.
pub fn exec_query(container: &str, command: &[String], stdin: bool, tty: bool) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for word in command {
        q.append_pair("command", word);
    }
    q.append_pair("container", container);
    if stdin {
        q.append_pair("stdin", "true");
    }
    q.append_pair("stdout", "true");
    if !tty {
        q.append_pair("stderr", "true");
    }
    if tty {
        q.append_pair("tty", "true");
    }
    q.finish()
}

pub async fn run(ctx: &Ctx, args: &ExecArgs, _out: &mut dyn Write) -> anyhow::Result<()> {
    let pod = super::logs::resolve_pod(ctx, &args.target).await?;
    let (container, note) = super::logs::pick_container(&pod, args.container.as_deref())?;
    if let Some(n) = note {
        eprintln!("{n}");
    }
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        bail!("cannot exec into a container in a completed pod; current phase is {phase}");
    }
    let tty = args.tty && args.stdin && terminal::is_tty();
    if args.tty && !tty {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    let path = format!(
        "/api/v1/namespaces/{}/pods/{name}/exec?{}",
        ctx.namespace,
        exec_query(&container, &args.command, args.stdin, tty)
    );
    let conn = channel::connect(ctx, &path).await?;
    let v5 = conn.supports_stream_close();
    let (mut sink, mut source) = conn.into_stream().split();

    // Raw mode only once the server said yes, so a refused exec leaves the terminal alone.
    let raw = if tty {
        terminal::RawMode::enter()
    } else {
        None
    };
    let (to_server, mut outgoing) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    if tty {
        if let Some((cols, rows)) = terminal::size() {
            let _ = to_server.send(channel::resize_frame(cols, rows)).await;
        }
        let tx = to_server.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut winch) = signal(SignalKind::window_change()) else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some((cols, rows)) = terminal::size() {
                    if tx.send(channel::resize_frame(cols, rows)).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    if args.stdin {
        spawn_stdin_reader(to_server.clone(), v5);
    }
    drop(to_server);

    let mut error_stream = Vec::new();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut sending = true;
    loop {
        tokio::select! {
            frame = outgoing.recv(), if sending => match frame {
                Some(f) => {
                    if sink.send(Message::Binary(f.into())).await.is_err() {
                        sending = false;
                    }
                }
                None => sending = false,
            },
            msg = source.next() => match msg {
                Some(Ok(Message::Binary(data))) => match channel::split(&data) {
                    Some((channel::STDOUT, p)) => {
                        let mut o = stdout.lock();
                        o.write_all(p)?;
                        o.flush()?;
                    }
                    Some((channel::STDERR, p)) => {
                        let mut e = stderr.lock();
                        e.write_all(p)?;
                        e.flush()?;
                    }
                    Some((channel::ERROR, p)) => error_stream.extend_from_slice(p),
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    // A reset after the Status arrived is just the server hanging up.
                    if error_stream.is_empty() {
                        bail!("the exec stream to {} broke: {e}", ctx.server);
                    }
                    break;
                }
            },
        }
    }
    drop(raw);
    match channel::outcome(&error_stream) {
        Outcome::Exited(0) => Ok(()),
        Outcome::Exited(code) => Err(RemoteExit(code).into()),
        Outcome::Failed(message) => bail!("exec in {name}/{container} failed: {message}"),
    }
}

/// Reads local stdin on a plain thread (a blocked read must not hold the runtime open
/// at exit) and sends it as stream-0 frames; at EOF, v5 half-closes stdin so commands
/// like `cat` finish. v4 has no way to say EOF, as with kubectl.
fn spawn_stdin_reader(tx: tokio::sync::mpsc::Sender<Vec<u8>>, v5: bool) {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 8192];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(channel::frame(channel::STDIN, &buf[..n]))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        if v5 {
            let _ = tx.blocking_send(vec![channel::CLOSE, channel::STDIN]);
        }
    });
}

/// The local terminal, through `stty` on /dev/tty (no termios binding needed).
mod terminal {
    use std::process::{Command, Stdio};

    pub fn is_tty() -> bool {
        use std::io::IsTerminal;
        std::io::stdin().is_terminal()
    }

    fn stty(args: &[&str]) -> Option<String> {
        let tty = std::fs::File::open("/dev/tty").ok()?;
        let out = Command::new("stty")
            .args(args)
            .stdin(Stdio::from(tty))
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `(columns, rows)`.
    pub fn size() -> Option<(u16, u16)> {
        let s = stty(&["size"])?;
        let mut it = s.split_whitespace();
        let rows = it.next()?.parse().ok()?;
        let cols = it.next()?.parse().ok()?;
        Some((cols, rows))
    }

    /// Raw mode for the guard's lifetime; the saved settings come back on drop.
    pub struct RawMode(String);

    impl RawMode {
        pub fn enter() -> Option<RawMode> {
            let saved = stty(&["-g"])?;
            stty(&["raw", "-echo"])?;
            Some(RawMode(saved))
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            let _ = stty(&[&self.0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_lists_command_words_and_streams() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "echo a b".to_string()];
        assert_eq!(
            exec_query("web", &cmd, false, false),
            "command=sh&command=-c&command=echo+a+b&container=web&stdout=true&stderr=true"
        );
        assert_eq!(
            exec_query("web", &cmd[..1], true, true),
            "command=sh&container=web&stdin=true&stdout=true&tty=true"
        );
    }
}
