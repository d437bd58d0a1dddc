//! `arcseal rotate --rotate-values` for Key Vault backed secrets.
//!
//! A `secrets-store.csi.x-k8s.io/v1` SecretProviderClass (`spec.provider: arcseal` or `azure`) may carry
//! `arcseal.dev/generate: "db-password=32, api-token=64:hex"`, naming `objectType: secret` objects of its
//! `spec.parameters.objects`. For each, rotate writes a new random value as a new version to the vault named
//! by `keyvaultName` through the official Azure SDK (`SecretClient::set_secret`), and only then edits the
//! repository: a pinned `objectVersion` is replaced in place (the old id's bytes by the new id's) so pods
//! mount the new version; an unpinned object needs no repository change (pods get the latest on their next
//! mount). Every Key Vault write happens before any file is written; if one fails, no file changes.
//!
//! Credentials come from the environment, as the SDK's credentials read it: `AZURE_FEDERATED_TOKEN_FILE`
//! (workload identity, with `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`), else `AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` (a service principal).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arcseal_keyvault::cloud::{Endpoints, Overrides};
use arcseal_keyvault::credential::Identity;
use arcseal_keyvault::params::{CloudName, KeyVaultObject, ObjectType, parse_objects, parse_vault_name};
use arcseal_keyvault::service_error::ServiceError;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, HttpClient, Transport};
use azure_security_keyvault_secrets::models::SetSecretParameters;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Location, Result};
use crate::repo::{ManifestFile, split_documents};
use crate::rotate::{GENERATE_ANNOTATION, Generator, parse_generators};

/// Kind of the Secrets Store CSI Driver's object.
pub const SPC_KIND: &str = "SecretProviderClass";
/// Its API group (any version).
pub const SPC_GROUP: &str = "secrets-store.csi.x-k8s.io/";
/// Providers whose `objects` name Azure Key Vault objects.
pub const PROVIDERS: [&str; 2] = ["arcseal", "azure"];
/// One Key Vault secret a SecretProviderClass marks as generated.
#[derive(Debug, Clone)]
pub struct Target {
    /// The manifest file.
    pub file: PathBuf,
    /// Its document (0-based).
    pub doc: usize,
    /// Line of the SecretProviderClass.
    pub line: usize,
    /// `namespace/name` of the SecretProviderClass.
    pub class: String,
    /// `keyvaultName`.
    pub vault: String,
    /// `cloudName`.
    pub cloud: CloudName,
    /// `objectName`.
    pub name: String,
    /// How to make the new value.
    pub generator: Generator,
    /// `objectVersion`, when pinned.
    pub pinned: Option<String>,
}

impl Target {
    fn location(&self) -> Location {
        let (ns, name) = self.class.split_once('/').unwrap_or(("", &self.class));
        Location::source(format!("{}:{}", self.file.display(), self.line))
            .document(self.doc + 1)
            .object(SPC_KIND, Some(ns), Some(name))
            .item(&self.name)
    }
}

/// One Key Vault rotation done (or planned, in a dry run: no `new_version`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// File holding the SecretProviderClass.
    pub file: String,
    /// Its line.
    pub line: usize,
    /// `namespace/name` of the SecretProviderClass.
    pub secret_provider_class: String,
    /// Vault URL.
    pub vault: String,
    /// `objectName`.
    pub object: String,
    /// The pinned version before (None: unpinned, pods mount the latest).
    pub old_version: Option<String>,
    /// The version written (None in a dry run).
    pub new_version: Option<String>,
    /// Whether the repository file changes (pinned `objectVersion`).
    pub edits_file: bool,
}

impl Rotation {
    /// `vault object: old -> new` for plans and commit messages.
    pub fn describe(&self) -> String {
        let old = self.old_version.as_deref().unwrap_or("latest");
        let new = self.new_version.as_deref().unwrap_or("<new version>");
        let pin = if self.edits_file { "objectVersion updated" } else { "unpinned, no file change" };
        format!(
            "- {}:{} {} Key Vault secret {:?} in {}: {old} -> {new} ({pin})",
            self.file, self.line, self.secret_provider_class, self.object, self.vault
        )
    }
}

/// Finds the Key Vault secrets marked as generated in `files`. Writes nothing; checks everything a later
/// repository edit needs, so no edit can fail after Key Vault has been written.
pub fn find(files: &[ManifestFile]) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for file in files {
        for d in 0..file.chunks.len() {
            let chunk = file.chunks[d];
            let text = &file.text()[chunk.start..chunk.end];
            if !text.contains(SPC_KIND) || !text.contains(GENERATE_ANNOTATION) {
                continue;
            }
            let at = file.location(d);
            let doc = file.parse(d)?;
            let v = &doc.0;
            let str_at = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default();
            if v.get("kind").and_then(Value::as_str) != Some(SPC_KIND)
                || !str_at("/apiVersion").starts_with(SPC_GROUP)
            {
                continue;
            }
            let Some(spec) = v.pointer("/metadata/annotations").and_then(|a| a.get(GENERATE_ANNOTATION))
            else {
                continue;
            };
            let (ns, name) = (str_at("/metadata/namespace"), str_at("/metadata/name"));
            let at = at.object(SPC_KIND, Some(ns), Some(name));
            if !PROVIDERS.contains(&str_at("/spec/provider")) {
                return Err(Error::input(
                    &at,
                    format!("{GENERATE_ANNOTATION} is set, but spec.provider is not one of {PROVIDERS:?}"),
                ));
            }
            let generators = parse_generators(spec.as_str().unwrap_or_default())
                .map_err(|e| Error::input(&at, format!("{GENERATE_ANNOTATION}: {e}")))?;
            let param = |name: &str, e: &dyn std::fmt::Display| {
                Error::input(
                    &at,
                    format!("spec.parameters: {e} ({name} is read as Azure's provider reads it)"),
                )
            };
            let vault = parse_vault_name(str_at("/spec/parameters/keyvaultName"))
                .map_err(|e| param("keyvaultName", &e))?;
            // Checked as the provider checks it, though the CLI never reads a node's environment file
            // (AzureStackCloud takes --authority-host and --keyvault-dns-suffix here).
            let cloud = CloudName::parse(
                str_at("/spec/parameters/cloudName"),
                Some(str_at("/spec/parameters/cloudEnvFileName")),
            )
            .map_err(|e| param("cloudName", &e))?;
            let objects =
                parse_objects(str_at("/spec/parameters/objects")).map_err(|e| param("objects", &e))?;
            let line = at.source.rsplit(':').next().and_then(|l| l.parse().ok()).unwrap_or(chunk.first_line);
            for (item, generator) in generators {
                let matching: Vec<&KeyVaultObject> = objects.iter().filter(|o| o.name == item).collect();
                let at = at.item(&item);
                if matching.is_empty() {
                    return Err(Error::input(
                        &at,
                        format!(
                            "{GENERATE_ANNOTATION} names {item:?}, which is not an objectName in spec.parameters.objects"
                        ),
                    ));
                }
                if matching.iter().any(|o| o.object_type != ObjectType::Secret) {
                    return Err(Error::input(
                        &at,
                        "only objectType: secret can be generated (keys and certificates are made by Key Vault)",
                    ));
                }
                let pins: Vec<&str> = matching.iter().filter_map(|o| o.version.as_deref()).collect();
                let pinned = pins.first().map(|p| p.to_string());
                if pins.iter().any(|p| Some(*p) != pinned.as_deref())
                    || (pinned.is_some() && pins.len() != matching.len())
                {
                    return Err(Error::input(
                        &at,
                        "this object is listed several times with different objectVersion pins; pin it the same way everywhere",
                    ));
                }
                if let Some(p) = &pinned
                    && (p.len() < 8
                        || !p.bytes().all(|b| b.is_ascii_alphanumeric())
                        || !text.contains(p.as_str()))
                {
                    return Err(Error::input(
                        &at,
                        "objectVersion cannot be edited in place: write it as a plain version id on its own line",
                    ));
                }
                out.push(Target {
                    file: file.path.clone(),
                    doc: d,
                    line,
                    class: format!("{ns}/{name}"),
                    vault: vault.clone(),
                    cloud: cloud.clone(),
                    name: item,
                    generator,
                    pinned,
                });
            }
        }
    }
    Ok(out)
}

/// Where and how to reach Key Vault.
pub struct Settings {
    /// The HTTP client (platform roots plus `--ca-bundle`).
    pub http: Arc<dyn HttpClient>,
    /// `--authority-host` and `--keyvault-dns-suffix`: replace every cloud's endpoints.
    pub overrides: Overrides,
    /// `--key-vault-identity`: who the job is to every vault.
    pub identity: Identity,
}

impl Settings {
    /// The endpoints of a target's cloud.
    fn endpoints(&self, t: &Target) -> Result<Endpoints> {
        self.overrides.resolve(&t.cloud).ok_or_else(|| {
            Error::input(
                &t.location(),
                "cloudName AzureStackCloud: pass --authority-host and --keyvault-dns-suffix for this cloud",
            )
        })
    }

    /// The vault URL a target would be written to (for plans).
    pub fn vault_url(&self, t: &Target) -> Result<String> {
        self.endpoints(t).map(|e| e.vault_url(&t.vault))
    }
}

/// Builds the HTTP client: the shared client with `ca_bundle` (PEM) added to the platform's roots;
/// `resolve` pins host names to addresses (private endpoints without DNS, and tests).
pub fn http_client(
    ca_bundle: Option<&Path>,
    resolve: &[(String, SocketAddr)],
) -> Result<Arc<dyn HttpClient>> {
    let pem = match ca_bundle {
        Some(path) => Some(crate::keys::read_capped(path, arcseal_keyvault::http::MAX_CA_BUNDLE_BYTES)?),
        None => None,
    };
    arcseal_keyvault::http::http_client(pem.as_deref(), resolve).map_err(|e| match ca_bundle {
        Some(path) => {
            Error::input(&Location::source(format!("--ca-bundle {}", path.display())), e.to_string())
        }
        None => Error::Usage(e.to_string()),
    })
}

fn credential(identity: &Identity, options: ClientOptions) -> Result<Arc<dyn TokenCredential>> {
    identity.credential("Key Vault rotation", options).map_err(|e| Error::Usage(e.to_string()))
}

/// What the service said (status, code, message): neither Key Vault nor Entra ID echoes a request body, so no
/// value can appear here.
fn sdk_message(e: &azure_core::Error) -> String {
    ServiceError::read(e).to_string()
}

/// The plan of a dry run: what would be written, nothing contacted.
pub fn dry_run(targets: &[Target], settings: &Settings) -> Result<Vec<Rotation>> {
    targets.iter().map(|t| Ok(rotation(t, settings.vault_url(t)?, None))).collect()
}

fn rotation(t: &Target, vault: String, new_version: Option<String>) -> Rotation {
    Rotation {
        file: t.file.display().to_string(),
        line: t.line,
        secret_provider_class: t.class.clone(),
        vault,
        object: t.name.clone(),
        old_version: t.pinned.clone(),
        new_version,
        edits_file: t.pinned.is_some(),
    }
}

/// Writes a new generated version of every target to Key Vault, one after another. The same object of
/// the same vault, named by several SecretProviderClasses, gets one new version.
pub async fn write(targets: &[Target], settings: &Settings) -> Result<Vec<Rotation>> {
    let transport = Transport::new(settings.http.clone());
    let mut credentials: BTreeMap<String, Arc<dyn TokenCredential>> = BTreeMap::new();
    let mut written: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let endpoints = settings.endpoints(t)?;
        let (authority, vault) = (endpoints.authority_host.clone(), endpoints.vault_url(&t.vault));
        if let Some(version) = written.get(&(vault.clone(), t.name.clone())) {
            out.push(rotation(t, vault, Some(version.clone())));
            continue;
        }
        let options = || ClientOptions {
            transport: Some(transport.clone()),
            cloud: Some(Arc::new(endpoints.cloud_configuration())),
            ..Default::default()
        };
        let credential = match credentials.get(&authority) {
            Some(c) => c.clone(),
            None => {
                let c = credential(&settings.identity, options())?;
                credentials.insert(authority.clone(), c.clone());
                c
            }
        };
        let failed = |message: String| {
            let done: Vec<String> =
                out.iter().map(|r: &Rotation| format!("{} in {}", r.object, r.vault)).collect();
            Error::KeyVault {
                at: Box::new(t.location()),
                object: t.name.clone(),
                vault: vault.clone(),
                message,
                already_written: done,
            }
        };
        let client = SecretClient::new(
            &vault,
            credential,
            Some(SecretClientOptions { client_options: options(), ..Default::default() }),
        )
        .map_err(|e| failed(sdk_message(&e)))?;
        let fresh =
            t.generator.generate().map_err(|source| Error::Encrypt { at: Box::new(t.location()), source })?;
        let parameters = SetSecretParameters {
            // Generated from an ASCII alphabet.
            value: Some(String::from_utf8_lossy(fresh.as_bytes()).into_owned()),
            ..Default::default()
        };
        drop(fresh);
        let body = parameters.try_into().map_err(|e: azure_core::Error| failed(sdk_message(&e)))?;
        let secret = client
            .set_secret(&t.name, body, None)
            .await
            .and_then(|r| r.into_model())
            .map_err(|e| failed(sdk_message(&e)))?;
        let version = secret
            .id
            .as_deref()
            .and_then(|id| id.trim_end_matches('/').rsplit('/').next())
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(str::to_owned)
            .ok_or_else(|| failed("Key Vault answered without a version id".into()))?;
        written.insert((vault.clone(), t.name.clone()), version.clone());
        out.push(rotation(t, vault, Some(version)));
    }
    Ok(out)
}

/// Replaces pinned `objectVersion`s by the new versions in the files' texts: `changes` holds the texts
/// already edited by the SealedSecret rotation (others are read from `files`); the edited texts are added to
/// or updated in `changes`. Only the old version id's bytes change.
pub fn edit_pins(
    changes: &mut Vec<(PathBuf, String)>,
    files: &[ManifestFile],
    targets: &[Target],
    rotations: &[Rotation],
) -> Result<()> {
    for (t, r) in targets.iter().zip(rotations) {
        let (Some(old), Some(new)) = (&t.pinned, &r.new_version) else { continue };
        let pos = changes.iter().position(|(p, _)| *p == t.file);
        let mut text = match pos {
            Some(i) => changes[i].1.clone(),
            None => match files.iter().find(|f| f.path == t.file) {
                Some(f) => f.text().to_owned(),
                None => continue,
            },
        };
        let chunk = split_documents(&text)
            .get(t.doc)
            .copied()
            .ok_or_else(|| Error::input(&t.location(), "the document moved while planning; rerun rotate"))?;
        let doc = text[chunk.start..chunk.end].replace(old.as_str(), new);
        text.replace_range(chunk.start..chunk.end, &doc);
        match pos {
            Some(i) => changes[i].1 = text,
            None => changes.push((t.file.clone(), text)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJECTS: &str = "array:\n  - |\n    objectName: db-password\n    objectType: secret\n    objectVersion: 0123456789abcdef0123456789abcdef\n  - |\n    objectName: tls\n    objectType: cert\n";

    fn spc(objects: &str, generate: &str) -> String {
        let indented: String = objects.lines().map(|l| format!("      {l}\n")).collect();
        format!(
            "# comment kept\napiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: app\n  namespace: team-a\n  annotations:\n    arcseal.dev/generate: \"{generate}\"\nspec:\n  provider: azure\n  parameters:\n    keyvaultName: kv1\n    objects: |\n{indented}"
        )
    }

    #[test]
    fn finds_targets_and_edits_only_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spc.yaml");
        let text = format!("a: 1\n---\n{}", spc(OBJECTS, "db-password=24:hex"));
        std::fs::write(&path, &text).unwrap();
        let files = vec![ManifestFile::read(&path).unwrap()];
        let targets = find(&files).unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].class, "team-a/app");
        assert_eq!(targets[0].pinned.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        let r =
            vec![Rotation { new_version: Some("f".repeat(32)), ..rotation(&targets[0], "v".into(), None) }];
        let mut changes = Vec::new();
        edit_pins(&mut changes, &files, &targets, &r).unwrap();
        assert_eq!(changes[0].1, text.replace("0123456789abcdef0123456789abcdef", &"f".repeat(32)));
    }

    #[test]
    fn pins_are_edited_on_top_of_resealed_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.yaml");
        let spc_text = spc(OBJECTS, "db-password=24");
        std::fs::write(&path, format!("v: AAA\n---\n{spc_text}")).unwrap();
        let files = vec![ManifestFile::read(&path).unwrap()];
        let targets = find(&files).unwrap();
        let r =
            vec![Rotation { new_version: Some("e".repeat(32)), ..rotation(&targets[0], "v".into(), None) }];
        // The SealedSecret rotation already lengthened the first document.
        let mut changes = vec![(path.clone(), format!("v: BBBBBBBBBB\n---\n{spc_text}"))];
        edit_pins(&mut changes, &files, &targets, &r).unwrap();
        assert_eq!(changes.len(), 1);
        let expected = spc_text.replace("0123456789abcdef0123456789abcdef", &"e".repeat(32));
        assert_eq!(changes[0].1, format!("v: BBBBBBBBBB\n---\n{expected}"));
    }

    #[test]
    fn refuses_what_it_cannot_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spc.yaml");
        for (generate, expect) in
            [("tls=32", "only objectType: secret"), ("nope=32", "not an objectName"), ("x", "item=LENGTH")]
        {
            std::fs::write(&path, spc(OBJECTS, generate)).unwrap();
            let e = find(&[ManifestFile::read(&path).unwrap()]).unwrap_err().to_string();
            assert!(e.contains(expect) && e.contains("SecretProviderClass team-a/app"), "{e}");
        }
    }

    /// The CLI applies the provider's parameter rules (one parser, arcseal-keyvault): what a pod could not
    /// mount is not rotated either, and what a pod mounts is rotatable.
    #[test]
    fn parameters_follow_the_provider_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spc.yaml");
        let with = |from: &str, to: &str| spc(OBJECTS, "db-password=24").replacen(from, to, 1);
        let many: String =
            (0..257).map(|i| format!("  - |\n    objectName: s{i}\n    objectType: secret\n")).collect();
        for (text, expect) in [
            (with("keyvaultName: kv1", "keyvaultName: kv"), "3-24 characters"),
            (with("keyvaultName: kv1", "keyvaultName: \"\""), "keyvaultName is not provided"),
            (with("keyvaultName: kv1", "keyvaultName: kv1\n    cloudName: Mars"), "invalid cloudName"),
            (
                with("keyvaultName: kv1", "keyvaultName: kv1\n    cloudName: AzureStackCloud"),
                "cloudEnvFileName",
            ),
            (
                spc(
                    &OBJECTS.replace("objectType: cert\n", "objectType: cert\n    objectType: key\n"),
                    "db-password=24",
                ),
                "objects[1]",
            ),
            (
                spc(&OBJECTS.replace("objectName: tls", "objectName: db-password"), "db-password=24"),
                "collides",
            ),
            (spc(&format!("array:\n{many}"), "s0=24"), "at most 256"),
        ] {
            std::fs::write(&path, &text).unwrap();
            let e = find(&[ManifestFile::read(&path).unwrap()]).unwrap_err().to_string();
            assert!(e.contains(expect) && e.contains("SecretProviderClass team-a/app"), "{expect}: {e}");
        }
        for cloud in ["AzureCloud", "AzureUSGovernment", "azurechinacloud"] {
            std::fs::write(
                &path,
                with("keyvaultName: kv1", &format!("keyvaultName: kv1\n    cloudName: {cloud}")),
            )
            .unwrap();
            assert_eq!(find(&[ManifestFile::read(&path).unwrap()]).unwrap().len(), 1, "{cloud}");
        }
    }
}
