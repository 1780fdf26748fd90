//! An OCI image layout writer: turns a list of files into a one-layer image on disk,
//! with no network and no container tool.
//!
//! The result is the directory format of the OCI image-spec "image layout"
//! (`oci-layout`, `index.json`, `blobs/sha256/...`) that `skopeo copy oci:DIR:TAG ...`
//! and `ctr image import` read. The layer is a gzip-compressed tar; entries are written
//! in order with a fixed owner (root) and a fixed mtime, so the same inputs always give
//! the same digests.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Media types from the OCI image-spec.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation `skopeo` (and containerd) use to find a tag inside `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Every file in the layer gets this mtime: a constant keeps digests reproducible.
const FIXED_MTIME: u64 = 0;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("cannot read {path} for the image layer: {source}")]
    ReadSource {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the image layout at {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid path {0:?} in image: use a relative or absolute path without '..'")]
    BadPath(String),
}

/// One entry of the image's single layer. Paths are inside the image (`/bin/sh` or
/// `bin/sh`, both mean the same).
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        contents: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// The runtime defaults of the image (the `config` object of the image config).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
}

/// What to write: the tag used inside the layout's `index.json`, the entries and the
/// runtime defaults.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub tag: String,
    pub entries: Vec<Entry>,
    pub config: RuntimeConfig,
}

/// The digests of what was written, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub dir: PathBuf,
    pub tag: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digest: String,
    /// sha256 of the uncompressed tar: the `rootfs.diff_ids` entry.
    pub diff_id: String,
    pub layer_size: u64,
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64 + 7);
    hex.push_str("sha256:");
    for b in sum {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The OCI architecture name of the machine this runs on (Go's GOARCH spelling).
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// Normalises an in-image path to the relative form tar entries use (`bin/sh`).
fn tar_path(path: &str) -> Result<String, OciError> {
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    if trimmed.is_empty() || trimmed.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(OciError::BadPath(path.to_string()));
    }
    Ok(trimmed.to_string())
}

/// Builds the uncompressed tar of the layer.
pub fn layer_tar(entries: &[Entry]) -> Result<Vec<u8>, OciError> {
    let io_err = |source| OciError::Write {
        path: PathBuf::from("<layer tar>"),
        source,
    };
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(FIXED_MTIME);
        match entry {
            Entry::Dir { path, mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                let p = format!("{}/", tar_path(path)?);
                builder
                    .append_data(&mut header, p, std::io::empty())
                    .map_err(io_err)?;
            }
            Entry::File {
                path,
                mode,
                contents,
            } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(contents.len() as u64);
                builder
                    .append_data(&mut header, tar_path(path)?, contents.as_slice())
                    .map_err(io_err)?;
            }
            Entry::Symlink { path, target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, tar_path(path)?, target)
                    .map_err(io_err)?;
            }
        }
    }
    builder.into_inner().map_err(io_err)
}

/// The image config JSON (OCI image-spec `config.md`).
pub fn config_json(config: &RuntimeConfig, diff_id: &str) -> serde_json::Value {
    let mut runtime = serde_json::Map::new();
    if !config.entrypoint.is_empty() {
        runtime.insert("Entrypoint".into(), json!(config.entrypoint));
    }
    if !config.cmd.is_empty() {
        runtime.insert("Cmd".into(), json!(config.cmd));
    }
    if !config.env.is_empty() {
        runtime.insert("Env".into(), json!(config.env));
    }
    if !config.working_dir.is_empty() {
        runtime.insert("WorkingDir".into(), json!(config.working_dir));
    }
    json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": runtime,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created_by": "skiff image builder" }],
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    let werr = |source| OciError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::create(path).map_err(werr)?;
    f.write_all(bytes).map_err(werr)?;
    Ok(())
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> Result<String, OciError> {
    let digest = sha256_digest(bytes);
    let hex = digest.trim_start_matches("sha256:");
    write_file(&blobs.join(hex), bytes)?;
    Ok(digest)
}

/// Writes `spec` as an OCI image layout into `dir` (created if missing; an existing
/// layout there is replaced, so rebuilding is idempotent).
pub fn write_layout(dir: &Path, spec: &ImageSpec) -> Result<Written, OciError> {
    let werr = |source| OciError::Write {
        path: dir.to_path_buf(),
        source,
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(werr)?;
    }
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(werr)?;

    let tar = layer_tar(&spec.entries)?;
    let diff_id = sha256_digest(&tar);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&tar).map_err(werr)?;
    let layer = gz.finish().map_err(werr)?;
    let layer_digest = write_blob(&blobs, &layer)?;

    let config = serde_json::to_vec(&config_json(&spec.config, &diff_id))
        .expect("a json! value always serialises");
    let config_digest = write_blob(&blobs, &config)?;

    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": { "mediaType": MEDIA_TYPE_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": layer_digest, "size": layer.len() }],
    }))
    .expect("a json! value always serialises");
    let manifest_digest = write_blob(&blobs, &manifest)?;

    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MEDIA_TYPE_MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": { ANNOTATION_REF_NAME: spec.tag },
        }],
    }))
    .expect("a json! value always serialises");
    write_file(&dir.join("index.json"), &index)?;
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;

    Ok(Written {
        dir: dir.to_path_buf(),
        tag: spec.tag.clone(),
        manifest_digest,
        config_digest,
        layer_digest,
        diff_id,
        layer_size: layer.len() as u64,
    })
}

/// Reads a host file into a layer entry.
pub fn file_from_host(image_path: &str, host_path: &Path, mode: u32) -> Result<Entry, OciError> {
    let contents = std::fs::read(host_path).map_err(|source| OciError::ReadSource {
        path: host_path.to_path_buf(),
        source,
    })?;
    Ok(Entry::File {
        path: image_path.to_string(),
        mode,
        contents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn spec() -> ImageSpec {
        ImageSpec {
            tag: "1.0".into(),
            entries: vec![
                Entry::Dir {
                    path: "/bin".into(),
                    mode: 0o755,
                },
                Entry::File {
                    path: "/bin/tool".into(),
                    mode: 0o755,
                    contents: b"#!x\n".to_vec(),
                },
                Entry::Symlink {
                    path: "/bin/sh".into(),
                    target: "tool".into(),
                },
            ],
            config: RuntimeConfig {
                entrypoint: vec!["/bin/tool".into()],
                cmd: vec![],
                env: vec!["PATH=/bin".into()],
                working_dir: "/".into(),
            },
        }
    }

    fn read_json(path: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn blob(dir: &Path, digest: &str) -> Vec<u8> {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    }

    #[test]
    fn tar_paths_are_relative_and_reject_escapes() {
        let cases = [
            ("/bin/sh", Some("bin/sh")),
            ("bin/sh", Some("bin/sh")),
            ("/etc/", Some("etc")),
            ("/../etc", None),
            ("/", None),
            ("a//b", None),
        ];
        for (input, want) in cases {
            assert_eq!(tar_path(input).ok().as_deref(), want, "{input}");
        }
    }

    #[test]
    fn layout_is_consistent_and_every_digest_matches_its_blob() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("img");
        let w = write_layout(&dir, &spec()).unwrap();

        assert_eq!(
            read_json(&dir.join("oci-layout"))["imageLayoutVersion"],
            "1.0.0"
        );
        let index = read_json(&dir.join("index.json"));
        let desc = &index["manifests"][0];
        assert_eq!(desc["digest"], w.manifest_digest.as_str());
        assert_eq!(desc["annotations"][ANNOTATION_REF_NAME], "1.0");

        let manifest_bytes = blob(&dir, &w.manifest_digest);
        assert_eq!(sha256_digest(&manifest_bytes), w.manifest_digest);
        assert_eq!(desc["size"], manifest_bytes.len());
        let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
        assert_eq!(manifest["config"]["digest"], w.config_digest.as_str());
        assert_eq!(manifest["layers"][0]["digest"], w.layer_digest.as_str());
        assert_eq!(manifest["layers"][0]["mediaType"], MEDIA_TYPE_LAYER_GZIP);

        let config: serde_json::Value =
            serde_json::from_slice(&blob(&dir, &w.config_digest)).unwrap();
        assert_eq!(config["config"]["Entrypoint"][0], "/bin/tool");
        assert!(
            config["config"].get("Cmd").is_none(),
            "empty cmd must be omitted"
        );
        assert_eq!(config["os"], "linux");

        // The diff_id is the digest of the *uncompressed* layer.
        let layer = blob(&dir, &w.layer_digest);
        assert_eq!(sha256_digest(&layer), w.layer_digest);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(layer.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(sha256_digest(&tar), w.diff_id);
        assert_eq!(config["rootfs"]["diff_ids"][0], w.diff_id.as_str());
    }

    #[test]
    fn layer_holds_entries_with_modes_links_and_root_owner() {
        let tar_bytes = layer_tar(&spec().entries).unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            assert_eq!(h.uid().unwrap(), 0);
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            seen.push((path, h.entry_type(), h.mode().unwrap(), body, link));
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].0, "bin/");
        assert!(seen[0].1.is_dir());
        assert_eq!(
            (seen[1].0.as_str(), seen[1].2, seen[1].3.as_slice()),
            ("bin/tool", 0o755, &b"#!x\n"[..])
        );
        assert!(seen[2].1.is_symlink());
        assert_eq!(seen[2].4.as_deref(), Some("tool"));
    }

    #[test]
    fn rebuilding_gives_identical_digests() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write_layout(&tmp.path().join("a"), &spec()).unwrap();
        let b = write_layout(&tmp.path().join("a"), &spec()).unwrap();
        assert_eq!(a.manifest_digest, b.manifest_digest);
        let mut other = spec();
        other.config.cmd = vec!["x".into()];
        let c = write_layout(&tmp.path().join("c"), &other).unwrap();
        assert_ne!(a.config_digest, c.config_digest);
        assert_eq!(a.layer_digest, c.layer_digest);
    }
}
