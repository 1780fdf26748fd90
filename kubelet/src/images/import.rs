//! `skiff image push`: a user's image (a `docker save` tarball, an OCI archive or an
//! OCI layout directory) into the registry mirror every node's containerd pulls
//! through, so `image: myapp:1` in a pod works offline like any other pull.
//!
//! The decisions are pure functions (what format a file is, which name it carries,
//! where the mirror stores it); [`push`] is the thin shell that runs `skopeo copy`
//! (inside the lab's hub namespace when the mirror lives there) and reports its
//! progress line by line.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::io::AsyncBufReadExt;

use crate::containerd::MIRRORED_REGISTRIES;
use crate::process::{self, ProcessError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    // The io error is part of the message, not a `source`: `{:#}` would print it twice.
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0} is neither a docker-save tarball (manifest.json), an OCI archive (oci-layout, index.json) nor an OCI layout directory")]
    UnknownFormat(PathBuf),
    #[error("{0} does not say what the image is called; pass --name, e.g. --name myapp:1")]
    NoName(PathBuf),
    #[error("--name {name:?}: {why}")]
    BadName { name: String, why: String },
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("pushing {reference} with skopeo failed: {stderr}")]
    Push { reference: String, stderr: String },
}

/// What kind of image source a path is, as skopeo names the transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `docker save` output (`manifest.json` with `RepoTags`).
    DockerArchive,
    /// An OCI image layout packed in a tarball.
    OciArchive,
    /// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
    OciDir,
}

impl Format {
    pub fn transport(self) -> &'static str {
        match self {
            Format::DockerArchive => "docker-archive",
            Format::OciArchive => "oci-archive",
            Format::OciDir => "oci",
        }
    }
}

/// The format of a tarball from the names of its entries. A recent `docker save`
/// writes both layouts; `manifest.json` wins because it carries the tags.
pub fn format_from_entries<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Format> {
    let (mut docker, mut oci) = (false, false);
    for n in names {
        match n.trim_start_matches("./") {
            "manifest.json" => docker = true,
            "oci-layout" | "index.json" => oci = true,
            _ => {}
        }
    }
    if docker {
        Some(Format::DockerArchive)
    } else if oci {
        Some(Format::OciArchive)
    } else {
        None
    }
}

/// The name an image source carries: `RepoTags[0]` of a docker-save `manifest.json`,
/// or the `org.opencontainers.image.ref.name` (a full name when it has a `/` or `:`
/// before the tag, as containerd writes it; a bare tag otherwise, which names nothing)
/// or `io.containerd.image.name` annotation of an OCI `index.json`.
pub fn name_from_metadata(format: Format, json: &serde_json::Value) -> Option<String> {
    match format {
        Format::DockerArchive => json
            .get(0)?
            .get("RepoTags")?
            .get(0)?
            .as_str()
            .map(str::to_string),
        Format::OciArchive | Format::OciDir => {
            let ann = json.get("manifests")?.get(0)?.get("annotations")?;
            let full = ann.get("io.containerd.image.name").and_then(|v| v.as_str());
            let refname = ann
                .get("org.opencontainers.image.ref.name")
                .and_then(|v| v.as_str())
                // A bare tag ("latest", "1.0") is not an image name.
                .filter(|r| r.contains('/') || r.contains(':'));
            full.or(refname).map(str::to_string)
        }
    }
}

/// `myapp` -> `docker.io/library/myapp:latest`, `me/app:1` -> `docker.io/me/app:1`,
/// `registry.k8s.io/x:2` unchanged: the fully qualified name CRI pulls, as upstream
/// normalises it. Digests are refused (the mirror stores tags), and so are registries
/// the node's containerd does not pull through the mirror.
pub fn normalise_reference(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("an image name is required".into());
    }
    if name.contains('@') {
        return Err("a digest cannot be pushed to; name a tag (NAME:TAG)".into());
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_ascii_uppercase())
    {
        return Err("image names are lowercase and have no spaces".into());
    }
    let (host, path) = match name.split_once('/') {
        Some((h, rest)) if h.contains('.') || h.contains(':') || h == "localhost" => {
            (h.to_string(), rest.to_string())
        }
        Some(_) => ("docker.io".to_string(), name.to_string()),
        None => ("docker.io".to_string(), format!("library/{name}")),
    };
    let host = if host == "index.docker.io" {
        "docker.io".to_string()
    } else {
        host
    };
    if !MIRRORED_REGISTRIES.contains(&host.as_str()) {
        return Err(format!(
            "registry {host} is not mirrored in this cluster (nodes pull {} through the mirror); name the image under one of them, e.g. {}",
            MIRRORED_REGISTRIES.join(" and "),
            path.rsplit('/').next().unwrap_or(&path)
        ));
    }
    let last = path.rsplit('/').next().unwrap_or(&path);
    if path.is_empty() || last.is_empty() || path.split('/').any(str::is_empty) {
        return Err("the repository path is empty".into());
    }
    let path = if last.contains(':') {
        path
    } else {
        format!("{path}:latest")
    };
    Ok(format!("{host}/{path}"))
}

/// What to push: where from, in which format, under which name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub format: Format,
    /// The fully qualified reference (see [`normalise_reference`]).
    pub reference: String,
}

impl Source {
    /// skopeo's source argument, e.g. `docker-archive:/tmp/app.tar`.
    pub fn skopeo_source(&self) -> String {
        format!("{}:{}", self.format.transport(), self.path.display())
    }
}

/// Reads a tarball (plain or gzip) and returns its format and embedded metadata
/// (`manifest.json` or `index.json`, whichever decides the format).
fn inspect_tar(path: &Path) -> Result<(Format, Option<serde_json::Value>), ImportError> {
    let err = |error| ImportError::Read {
        path: path.to_path_buf(),
        error,
    };
    let mut head = [0u8; 2];
    let gz = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(err)?
        == 2
        && head == [0x1f, 0x8b];
    let file = std::fs::File::open(path).map_err(err)?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    // The file opened: from here on, a read that fails means it is not a tarball.
    let not_image = |_| ImportError::UnknownFormat(path.to_path_buf());
    let mut archive = tar::Archive::new(reader);
    let mut names = Vec::new();
    let mut manifest = None;
    let mut index = None;
    for entry in archive.entries().map_err(not_image)? {
        let mut entry = entry.map_err(not_image)?;
        let name = entry
            .path()
            .map_err(not_image)?
            .to_string_lossy()
            .to_string();
        let name = name.trim_start_matches("./").to_string();
        if name == "manifest.json" || name == "index.json" {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(not_image)?;
            let json = serde_json::from_str(&text).ok();
            if name == "manifest.json" {
                manifest = json;
            } else {
                index = json;
            }
        }
        names.push(name);
    }
    let format = format_from_entries(names.iter().map(String::as_str))
        .ok_or_else(|| ImportError::UnknownFormat(path.to_path_buf()))?;
    let meta = match format {
        Format::DockerArchive => manifest,
        _ => index,
    };
    Ok((format, meta))
}

/// Looks at `path` and decides what to push and as what; `name` (from `--name`)
/// overrides the name the image carries.
pub fn inspect(path: &Path, name: Option<&str>) -> Result<Source, ImportError> {
    let meta = std::fs::metadata(path).map_err(|error| ImportError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let (format, json) = if meta.is_dir() {
        if !path.join("oci-layout").exists() || !path.join("index.json").exists() {
            return Err(ImportError::UnknownFormat(path.to_path_buf()));
        }
        let index = std::fs::read_to_string(path.join("index.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        (Format::OciDir, index)
    } else {
        inspect_tar(path)?
    };
    let carried = json.as_ref().and_then(|j| name_from_metadata(format, j));
    let chosen = name
        .map(str::to_string)
        .or(carried)
        .ok_or_else(|| ImportError::NoName(path.to_path_buf()))?;
    let reference = normalise_reference(&chosen).map_err(|why| ImportError::BadName {
        name: chosen.clone(),
        why,
    })?;
    Ok(Source {
        path: path.to_path_buf(),
        format,
        reference,
    })
}

/// Where the mirror is: its address and the network namespace it is reachable from.
#[derive(Debug, Clone)]
pub struct Target {
    pub registry: SocketAddr,
    pub netns: Option<String>,
}

/// Copies `source` into the mirror with skopeo, calling `progress` with each line
/// skopeo prints (blob by blob), and returns the pushed reference's mirror path.
pub async fn push(
    source: &Source,
    target: &Target,
    mut progress: impl FnMut(&str),
) -> Result<String, ImportError> {
    let (_, path) =
        crate::registry::mirror_path(&source.reference).map_err(|e| ImportError::BadName {
            name: source.reference.clone(),
            why: e.to_string(),
        })?;
    let dest = format!("docker://{}/{}", target.registry, path);
    let mut cmd = process::command_in(target.netns.as_deref(), "skopeo")?;
    // --insecure-policy: the user hands us the file to push; there is no signature
    // policy on a lab machine (and /etc/containers/policy.json may be missing).
    cmd.args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .arg(source.skopeo_source())
        .arg(&dest)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: "skopeo".into(),
        source,
    })?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        if !line.is_empty() {
            progress(line);
        }
    }
    let status = child.wait().await.map_err(|source| ProcessError::Spawn {
        program: "skopeo".into(),
        source,
    })?;
    let stderr = errors.await.unwrap_or_default();
    if !status.success() {
        return Err(ImportError::Push {
            reference: source.reference.clone(),
            stderr: stderr.trim().to_string(),
        });
    }
    Ok(path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_are_told_apart_by_their_entries() {
        let cases: &[(&[&str], Option<Format>)] = &[
            (
                &["manifest.json", "abc/layer.tar"],
                Some(Format::DockerArchive),
            ),
            (
                &[
                    "oci-layout",
                    "index.json",
                    "manifest.json",
                    "blobs/sha256/x",
                ],
                Some(Format::DockerArchive),
            ),
            (&["./oci-layout", "./index.json"], Some(Format::OciArchive)),
            (&["index.json", "blobs/sha256/x"], Some(Format::OciArchive)),
            (&["etc/passwd", "bin/sh"], None),
            (&[], None),
        ];
        for (entries, want) in cases {
            assert_eq!(
                format_from_entries(entries.iter().copied()),
                *want,
                "{entries:?}"
            );
        }
    }

    #[test]
    fn names_come_from_the_archive_metadata() {
        let docker = json!([{"Config": "c.json", "RepoTags": ["myapp:1"], "Layers": []}]);
        assert_eq!(
            name_from_metadata(Format::DockerArchive, &docker).as_deref(),
            Some("myapp:1")
        );
        let untagged = json!([{"Config": "c.json", "RepoTags": null}]);
        assert_eq!(name_from_metadata(Format::DockerArchive, &untagged), None);
        let ctr = json!({"manifests": [{"annotations": {
            "io.containerd.image.name": "docker.io/me/app:2",
            "org.opencontainers.image.ref.name": "2"}}]});
        assert_eq!(
            name_from_metadata(Format::OciArchive, &ctr).as_deref(),
            Some("docker.io/me/app:2")
        );
        let full_ref = json!({"manifests": [{"annotations": {"org.opencontainers.image.ref.name": "me/app:3"}}]});
        assert_eq!(
            name_from_metadata(Format::OciDir, &full_ref).as_deref(),
            Some("me/app:3")
        );
        let bare_tag = json!({"manifests": [{"annotations": {"org.opencontainers.image.ref.name": "latest"}}]});
        assert_eq!(name_from_metadata(Format::OciDir, &bare_tag), None);
    }

    #[test]
    fn references_are_normalised_like_upstream_and_limited_to_mirrored_registries() {
        let ok = [
            ("myapp", "docker.io/library/myapp:latest"),
            ("myapp:1", "docker.io/library/myapp:1"),
            ("me/app:2", "docker.io/me/app:2"),
            ("docker.io/me/app", "docker.io/me/app:latest"),
            ("index.docker.io/library/x:1", "docker.io/library/x:1"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        ];
        for (input, want) in ok {
            assert_eq!(normalise_reference(input).as_deref(), Ok(want), "{input}");
        }
        let bad = [
            ("", "required"),
            ("myapp@sha256:abcd", "digest"),
            ("MyApp:1", "lowercase"),
            ("ghcr.io/me/app:1", "not mirrored"),
            ("docker.io//x", "empty"),
        ];
        for (input, why) in bad {
            let e = normalise_reference(input).unwrap_err();
            assert!(e.contains(why), "{input}: {e}");
        }
    }

    #[test]
    fn inspect_reads_docker_save_and_oci_tarballs_and_layout_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = |name: &str, files: &[(&str, String)], gzip: bool| -> PathBuf {
            let path = dir.path().join(name);
            let mut data = Vec::new();
            {
                let mut b = tar::Builder::new(&mut data);
                for (n, text) in files {
                    let mut h = tar::Header::new_gnu();
                    h.set_size(text.len() as u64);
                    h.set_mode(0o644);
                    h.set_cksum();
                    b.append_data(&mut h, n, text.as_bytes()).unwrap();
                }
                b.finish().unwrap();
            }
            if gzip {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut e, &data).unwrap();
                data = e.finish().unwrap();
            }
            std::fs::write(&path, data).unwrap();
            path
        };
        let docker = tarball(
            "app.tar.gz",
            &[(
                "manifest.json",
                json!([{"RepoTags": ["web:2"], "Layers": []}]).to_string(),
            )],
            true,
        );
        let s = inspect(&docker, None).unwrap();
        assert_eq!(s.format, Format::DockerArchive);
        assert_eq!(s.reference, "docker.io/library/web:2");
        assert_eq!(
            s.skopeo_source(),
            format!("docker-archive:{}", docker.display())
        );
        // --name wins over the carried name.
        assert_eq!(
            inspect(&docker, Some("me/web:3")).unwrap().reference,
            "docker.io/me/web:3"
        );

        let oci = tarball(
            "oci.tar",
            &[
                ("oci-layout", "{}".into()),
                ("index.json", json!({"manifests": [{}]}).to_string()),
            ],
            false,
        );
        assert!(matches!(inspect(&oci, None), Err(ImportError::NoName(_))));
        let s = inspect(&oci, Some("tool:1")).unwrap();
        assert_eq!(s.format, Format::OciArchive);

        let layout = dir.path().join("layout");
        std::fs::create_dir(&layout).unwrap();
        assert!(matches!(
            inspect(&layout, Some("x")),
            Err(ImportError::UnknownFormat(_))
        ));
        std::fs::write(layout.join("oci-layout"), "{}").unwrap();
        std::fs::write(layout.join("index.json"), "{}").unwrap();
        assert_eq!(
            inspect(&layout, Some("x")).unwrap().skopeo_source(),
            format!("oci:{}", layout.display())
        );

        let junk = tarball("junk.tar", &[("etc/passwd", "root".into())], false);
        assert!(matches!(
            inspect(&junk, Some("x")),
            Err(ImportError::UnknownFormat(_))
        ));
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "nope\n").unwrap();
        assert!(matches!(
            inspect(&text, Some("x")),
            Err(ImportError::UnknownFormat(_))
        ));
        assert!(matches!(
            inspect(&dir.path().join("missing.tar"), Some("x")),
            Err(ImportError::Read { .. })
        ));
        assert!(matches!(
            inspect(&docker, Some("ghcr.io/a/b:1")),
            Err(ImportError::BadName { .. })
        ));
    }
}
