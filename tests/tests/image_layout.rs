//! The image scripts/build-image writes describes the same image as the Dockerfile: the files the final stage
//! copies, at the same paths; USER, EXPOSE, ENTRYPOINT and LABEL; nothing else but what the glibc-linked binaries
//! need: their shared libraries and /etc/nsswitch.conf (the Dockerfile's musl build needs neither; see
//! scripts/build-image). And the archive
//! is a well-formed OCI layout: every digest matches its blob, index.json names the image as containerd and
//! Docker expect.
//!
//! Reads `ARCSEAL_IMAGE_ARCHIVE`, else target/image/arcseal-controller.oci.tar (scripts/test-all builds it
//! first). Without either the test says so and passes, except under CI=true, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What the Dockerfile's final stage says about the image.
#[derive(Debug, Default)]
struct DockerfileImage {
    files: BTreeSet<String>,
    user: String,
    entrypoint: Vec<String>,
    exposed: BTreeSet<String>,
    labels: BTreeMap<String, String>,
}

fn parse_dockerfile(text: &str, version: &str) -> DockerfileImage {
    // Join continuation lines, then read only the last stage.
    let joined = text.replace("\\\n", " ");
    let stage = joined.rsplit_once("\nFROM ").map(|(_, s)| s).expect("a FROM line");
    let mut image = DockerfileImage::default();
    for line in stage.lines().map(str::trim) {
        let Some((instruction, rest)) = line.split_once(char::is_whitespace) else { continue };
        let rest = rest.trim();
        match instruction {
            "COPY" => {
                let words: Vec<&str> = rest.split_whitespace().filter(|w| !w.starts_with("--")).collect();
                let (dest, sources) = words.split_last().expect("COPY has a destination");
                for source in sources {
                    let path = if dest.ends_with('/') {
                        format!("{dest}{}", source.rsplit('/').next().unwrap())
                    } else {
                        (*dest).to_owned()
                    };
                    image.files.insert(path.trim_start_matches('/').to_owned());
                }
            }
            "USER" => image.user = rest.to_owned(),
            "EXPOSE" => image.exposed.extend(rest.split_whitespace().map(|p| format!("{p}/tcp"))),
            "ENTRYPOINT" => image.entrypoint = serde_json::from_str(rest).expect("ENTRYPOINT in exec form"),
            "LABEL" => {
                let (key, value) = rest.split_once('=').expect("LABEL key=value");
                let value = value.trim_matches('"').replace("${VERSION}", version);
                image.labels.insert(key.to_owned(), value);
            }
            _ => {}
        }
    }
    image
}

fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    format!("sha256:{}", String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap())
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256").join(digest.strip_prefix("sha256:").expect("sha256 digest"))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn built_image_matches_the_dockerfile() {
    let archive = std::env::var_os("ARCSEAL_IMAGE_ARCHIVE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/image/arcseal-controller.oci.tar"));
    if !archive.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no image archive at {}",
            archive.display()
        );
        eprintln!("skipped: no image archive at {} (run scripts/build-image)", archive.display());
        return;
    }
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .skip_while(|l| *l != "[workspace.package]")
        .find_map(|l| l.strip_prefix("version = \"")?.strip_suffix('"'))
        .expect("workspace version");
    let dockerfile = parse_dockerfile(&std::fs::read_to_string(repo().join("Dockerfile")).unwrap(), version);
    assert!(dockerfile.files.contains("usr/local/bin/arcseal-controller"), "{dockerfile:?}");

    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(dir.path()).status().unwrap();
    assert!(status.success(), "tar -xf {}", archive.display());
    let dir = dir.path();

    // The layout: oci-layout, index.json naming the image, Docker's manifest.json; digests match the blobs.
    assert_eq!(json(&dir.join("oci-layout"))["imageLayoutVersion"], "1.0.0");
    let index = json(&dir.join("index.json"));
    let descriptor = &index["manifests"][0];
    let annotations = &descriptor["annotations"];
    assert_eq!(
        annotations["io.containerd.image.name"],
        format!("docker.io/library/arcseal-controller:{version}")
    );
    assert_eq!(annotations["org.opencontainers.image.ref.name"], version);
    let digest = descriptor["digest"].as_str().unwrap();
    assert_eq!(sha256_file(&blob(dir, digest)), digest);
    let manifest = json(&blob(dir, digest));
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(sha256_file(&blob(dir, config_digest)), config_digest);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let layer_digest = layers[0]["digest"].as_str().unwrap();
    assert_eq!(sha256_file(&blob(dir, layer_digest)), layer_digest);
    let docker = json(&dir.join("manifest.json"));
    assert_eq!(docker[0]["RepoTags"][0], format!("arcseal-controller:{version}"));

    // The config: what the Dockerfile says.
    let config = json(&blob(dir, config_digest));
    let c = &config["config"];
    assert_eq!(c["User"], dockerfile.user.as_str());
    assert_eq!(c["Entrypoint"], serde_json::json!(dockerfile.entrypoint));
    let exposed: BTreeSet<String> = c["ExposedPorts"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(exposed, dockerfile.exposed);
    let labels: BTreeMap<String, String> = c["Labels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(labels, dockerfile.labels);
    assert_eq!(config["architecture"], "amd64");

    // The files: the Dockerfile's, plus only shared libraries (and the loader) the binaries link against.
    let out = Command::new("tar").arg("-tzvf").arg(blob(dir, layer_digest)).output().unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8(out.stdout).unwrap();
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, path) = (fields[0], fields[1], fields[5]);
        assert_eq!(owner, "0/0", "{path} must belong to root (the image runs as {})", dockerfile.user);
        let link = mode.starts_with('l');
        assert!(link || !mode[4..].contains('w'), "{path} is writable by group or others: {mode}");
        if mode.starts_with('-') {
            files.insert(path.to_owned());
        }
    }
    let missing: Vec<_> = dockerfile.files.difference(&files).collect();
    assert!(missing.is_empty(), "the Dockerfile copies {missing:?}, the built image lacks them");
    for extra in files.difference(&dockerfile.files) {
        let name = extra.rsplit('/').next().unwrap();
        let library = (extra.starts_with("lib") || extra.starts_with("usr/lib")) && name.contains(".so");
        // glibc's resolver reads /etc/hosts first only when told to (musl always does).
        let glibc = extra == "etc/nsswitch.conf";
        assert!(library || glibc, "{extra} is in the built image but not in the Dockerfile's, nor glibc's");
    }
}

#[test]
fn dockerfile_parser_reads_the_final_stage() {
    let image = parse_dockerfile(
        "FROM a AS build\nCOPY x /nope\nFROM scratch\nLABEL k=\"v ${VERSION}\"\nCOPY --from=build /o/a /o/b /usr/bin/\n\
         COPY --from=build /c.crt /etc/c.crt\nUSER 1:1\nEXPOSE 80 443\nENTRYPOINT [\"/usr/bin/a\"]\n",
        "9",
    );
    assert_eq!(image.files, BTreeSet::from(["usr/bin/a".into(), "usr/bin/b".into(), "etc/c.crt".into()]));
    assert_eq!(image.user, "1:1");
    assert_eq!(image.entrypoint, ["/usr/bin/a"]);
    assert_eq!(image.exposed, BTreeSet::from(["80/tcp".into(), "443/tcp".into()]));
    assert_eq!(image.labels, BTreeMap::from([("k".into(), "v 9".into())]));
}
