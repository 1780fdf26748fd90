//! The websocket "channel" framing that `exec` and `port-forward` speak with the API
//! server (`v5.channel.k8s.io`, falling back to `v4.channel.k8s.io`): every binary
//! message starts with one byte naming the stream it belongs to. This file holds the
//! pure framing and Status decisions plus the one I/O helper that opens the upgraded
//! connection, so that `exec.rs` and `port_forward.rs` only move bytes.

use serde_json::Value;

use super::client::Ctx;

/// Stream numbers of the remote-command protocol.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// Carries one `metav1.Status` when the command ends (v4 and later).
pub const ERROR: u8 = 3;
/// Terminal size as JSON `{"Width":..,"Height":..}`.
pub const RESIZE: u8 = 4;
/// v5 only: `[255, stream]` half-closes that stream (stdin EOF).
pub const CLOSE: u8 = 255;

/// One message of the channel protocol: `[stream, payload...]`.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(stream);
    out.extend_from_slice(payload);
    out
}

/// Splits a received message into its stream number and payload (`None`: empty message).
pub fn split(message: &[u8]) -> Option<(u8, &[u8])> {
    message.split_first().map(|(s, rest)| (*s, rest))
}

/// The resize message for a terminal of `cols` x `rows`.
pub fn resize_frame(cols: u16, rows: u16) -> Vec<u8> {
    frame(
        RESIZE,
        serde_json::json!({"Width": cols, "Height": rows})
            .to_string()
            .as_bytes(),
    )
}

/// How a remote command ended, from the Status on the error stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `status: Success`, or the stream closed without a Status (v1-v3 servers).
    Exited(i32),
    /// The command could not run (no such file, container gone...).
    Failed(String),
}

/// Reads the error stream's content: a Status whose `NonZeroExitCode` reason carries
/// the exit code in a cause `{reason: ExitCode, message: "N"}`; anything else that is
/// not Success is a failure to run, reported with the server's message.
pub fn outcome(error_stream: &[u8]) -> Outcome {
    if error_stream.iter().all(u8::is_ascii_whitespace) {
        return Outcome::Exited(0);
    }
    let Ok(status) = serde_json::from_slice::<Value>(error_stream) else {
        // Pre-v4 servers wrote plain text here.
        return Outcome::Failed(String::from_utf8_lossy(error_stream).trim().to_string());
    };
    if status["status"] == "Success" {
        return Outcome::Exited(0);
    }
    if status["reason"] == "NonZeroExitCode" {
        let code = status
            .pointer("/details/causes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str())
            .and_then(|m| m.trim().parse::<i32>().ok());
        if let Some(code) = code {
            return Outcome::Exited(code);
        }
    }
    Outcome::Failed(
        status["message"]
            .as_str()
            .unwrap_or("the remote command failed without a message")
            .to_string(),
    )
}

/// The exit code a remote command ended with, carried as an error so that `main` exits
/// with it (kubectl prints "command terminated with exit code N" and exits N).
#[derive(Debug)]
pub struct RemoteExit(pub i32);

impl std::fmt::Display for RemoteExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "command terminated with exit code {}", self.0)
    }
}

impl std::error::Error for RemoteExit {}

/// Opens the websocket for a pod subresource (`exec`, `portforward`) at `path`,
/// offering v5 then v4 of the channel protocol, and words a refusal like kubectl:
/// the server's Status, or the address that could not be reached.
pub async fn connect(ctx: &Ctx, path: &str) -> anyhow::Result<kube::client::Connection> {
    let req = http::Request::get(path).body(Vec::new())?;
    match ctx.client.connect(req).await {
        Ok(c) => Ok(c),
        Err(kube::Error::Api(status)) => {
            let body = serde_json::to_vec(&*status).unwrap_or_default();
            let code = http::StatusCode::from_u16(status.code)
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            Err(ctx.failure(code, &body).into())
        }
        Err(kube::Error::UpgradeConnection(e)) => Err(anyhow::anyhow!(
            "the server at {} did not switch to the websocket channel protocol ({e}); \
             it may not support v4/v5.channel.k8s.io or a proxy in between drops upgrades",
            ctx.server
        )),
        Err(e) => Err(ctx.transport_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_stream_byte() {
        assert_eq!(frame(STDIN, b"ab"), vec![0, b'a', b'b']);
        assert_eq!(split(&[2, b'x']), Some((STDERR, &b"x"[..])));
        assert_eq!(split(&[]), None);
        let resize = resize_frame(80, 24);
        assert_eq!(resize[0], RESIZE);
        let size: Value = serde_json::from_slice(&resize[1..]).unwrap();
        assert_eq!(size, serde_json::json!({"Width": 80, "Height": 24}));
    }

    #[test]
    fn outcome_reads_the_status() {
        let cases: [(&str, Outcome); 6] = [
            ("", Outcome::Exited(0)),
            (r#"{"status":"Success","metadata":{}}"#, Outcome::Exited(0)),
            (
                r#"{"status":"Failure","reason":"NonZeroExitCode","message":"command terminated with non-zero exit code: exit status 3","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#,
                Outcome::Exited(3),
            ),
            (
                r#"{"status":"Failure","reason":"NonZeroExitCode","message":"no code"}"#,
                Outcome::Failed("no code".into()),
            ),
            (
                r#"{"status":"Failure","message":"exec: \"nope\": executable file not found"}"#,
                Outcome::Failed("exec: \"nope\": executable file not found".into()),
            ),
            (
                "plain text error\n",
                Outcome::Failed("plain text error".into()),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(outcome(input.as_bytes()), want, "{input}");
        }
    }
}
