//! Parsers for everything the driver hands us in a `MountRequest`: all of it is untrusted input.
//!
//! - `attributes`: a JSON object of strings (the SecretProviderClass `parameters`, overlaid by the pod volume's
//!   attributes, plus the driver's `csi.storage.k8s.io/*` keys).
//! - `secrets`: a JSON object of strings (the nodePublishSecretRef data), or the literal `null`.
//! - `permission`: the default file mode in decimal (`420` = 0644), as a JSON number or a JSON string of digits.
//! - `objects` (inside the attributes): YAML whose `array:` items are themselves YAML documents, one per
//!   Key Vault object, parsed with serde-saphyr under a parse budget.
//!
//! Azure's provider's parameter names, defaults and error wording are kept so that a SecretProviderClass written for
//! `provider: azure` works unchanged; two known defects are not copied: an invalid `filePermission` is an error
//! (not mode 0), and `objectVersionHistory: N` yields exactly N versions.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use zeroize::Zeroizing;

/// Largest `attributes`, `secrets` or `objects` string accepted: the driver's own gRPC limit is 4 MiB, and a
/// SecretProviderClass is a Kubernetes object well under 1 MiB.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Most objects one mount may ask for: each costs a Key Vault call on a cache miss.
pub const MAX_OBJECTS: usize = 256;
/// Largest `objectVersionHistory`: Azure's field is an int32 and has no other bound. What bounds a mount instead is
/// the size of its response (the provider's response limit): a mount whose files add up to more fails
/// with `MountTooLarge`, and versions are fetched a few at a time, stopping at that size.
pub const MAX_VERSION_HISTORY: u32 = i32::MAX as u32;
/// `objectVersion: latest` means the newest version, as in Azure's multiple-versions example.
pub const LATEST_VERSION: &str = "latest";
/// The audience of the service account token used as a client assertion for workload identity.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The driver's attribute keys describing the pod.
pub mod keys {
    /// Pod name.
    pub const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
    /// Pod namespace.
    pub const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
    /// Pod UID.
    pub const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
    /// Service account name.
    pub const SERVICE_ACCOUNT_NAME: &str = "csi.storage.k8s.io/serviceAccount.name";
    /// JSON `{"<audience>":{"token","expirationTimestamp"}}` when the CSIDriver has tokenRequests.
    pub const SERVICE_ACCOUNT_TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";
}

/// Why a mount request's parameters were refused. The Display text is what the pod owner reads in the pod's events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// `attributes` is not a JSON object of strings.
    #[error("failed to parse attributes: {0}")]
    Attributes(String),
    /// `secrets` is not `null` or a JSON object of strings.
    #[error("failed to parse secrets (nodePublishSecretRef data): {0}")]
    Secrets(String),
    /// `permission` is not a decimal file mode.
    #[error(
        "failed to parse permission {0:?}: expected a decimal file mode such as 420 (0644), at most 511 (0777)"
    )]
    Permission(String),
    /// A required parameter is missing.
    #[error("{0} is not provided")]
    Missing(&'static str),
    /// `objects` is missing or empty.
    #[error("objects is not set")]
    ObjectsNotSet,
    /// `objects` is not the YAML the Azure provider accepts.
    #[error("failed to parse objects: {0}")]
    Objects(String),
    /// One object in `objects` is invalid.
    #[error("objects[{index}] ({name}): {reason}")]
    Object {
        /// Position in `array`.
        index: usize,
        /// objectName as given (may be empty).
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A parameter has a value we cannot use.
    #[error("invalid {name} {value:?}: {reason}")]
    Invalid {
        /// Parameter name as written in the SecretProviderClass.
        name: &'static str,
        /// The value (never a secret).
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// More than one of usePodIdentity / useVMManagedIdentity / useAzureTokenProxy.
    #[error("only one identity mode can be enabled at a time")]
    IdentityModes,
    /// Pod-managed identity (aad-pod-identity) was removed upstream.
    #[error(
        "usePodIdentity is not supported: aad-pod-identity is deprecated upstream; use workload identity (set clientID and grant the service account a federated credential)"
    )]
    PodIdentity,
    /// The token proxy mode of Azure's provider is not available.
    #[error("useAzureTokenProxy is not supported by arcseal; use workload identity (clientID) instead")]
    TokenProxy,
    /// Workload identity needs the driver to pass a service account token.
    #[error(
        "clientID is set (workload identity) but the driver sent no service account token for audience api://AzureADTokenExchange: add it to the CSIDriver's spec.tokenRequests"
    )]
    NoWorkloadIdentityToken,
    /// No way to authenticate was configured.
    #[error(
        "no identity configured: set clientID (workload identity), or nodePublishSecretRef with clientid and clientsecret (service principal), or useVMManagedIdentity"
    )]
    NoIdentity,
}

/// The attributes map the driver sends.
pub type Attributes = BTreeMap<String, String>;

/// Parses the `attributes` JSON: an object whose values are all strings.
pub fn parse_attributes(raw: &str) -> Result<Attributes, ParamError> {
    if raw.len() > MAX_INPUT_BYTES {
        return Err(ParamError::Attributes(format!("larger than {MAX_INPUT_BYTES} bytes")));
    }
    serde_json::from_str::<Attributes>(raw).map_err(|e| ParamError::Attributes(json_error(&e)))
}

/// The nodePublishSecretRef data; values are credentials, so the map wipes itself and has no Debug output.
#[derive(Default)]
pub struct Secrets(BTreeMap<String, Zeroizing<String>>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    /// The value of `key`, matched case-insensitively as Azure's provider does (`clientid`, `ClientID`, ...).
    pub fn get_ignore_case(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    /// Whether there is no data.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses the `secrets` JSON: `null` (no nodePublishSecretRef), or an object of strings.
pub fn parse_secrets(raw: &str) -> Result<Secrets, ParamError> {
    if raw.len() > MAX_INPUT_BYTES {
        return Err(ParamError::Secrets(format!("larger than {MAX_INPUT_BYTES} bytes")));
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(Secrets::default());
    }
    // Errors from serde_json quote no input, so a malformed secret is not echoed into pod events.
    let parsed: Option<BTreeMap<String, String>> =
        serde_json::from_str(trimmed).map_err(|e| ParamError::Secrets(json_error(&e)))?;
    Ok(Secrets(parsed.unwrap_or_default().into_iter().map(|(k, v)| (k, Zeroizing::new(v))).collect()))
}

fn json_error(e: &serde_json::Error) -> String {
    format!("invalid JSON at line {} column {} ({:?})", e.line(), e.column(), e.classify())
}

/// Parses `permission`: the driver marshals an `os.FileMode`, i.e. a JSON number such as `420`.
/// A JSON string of digits (`"420"`) is accepted too. The result is at most 0o777.
pub fn parse_permission(raw: &str) -> Result<u32, ParamError> {
    let bad = || ParamError::Permission(raw.chars().take(32).collect());
    let t = raw.trim();
    let digits = t.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(t);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mode: u32 = digits.parse().map_err(|_| bad())?;
    if mode > 0o777 {
        return Err(bad());
    }
    Ok(mode)
}

/// Parses an octal `filePermission` such as `"0600"` or `"644"`; at most 0777.
pub fn parse_file_permission(raw: &str) -> Result<u32, String> {
    let t = raw.trim();
    // Azure parses it with Go's strconv.ParseInt(s, 8, 32): octal digits only, no "0o" prefix.
    let digits = t;
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "invalid filePermission {:?}: expected an octal mode such as \"0644\", at most \"0777\"",
            raw.chars().take(16).collect::<String>()
        ));
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
    if mode > 0o777 {
        return Err(format!("invalid filePermission {raw:?}: at most \"0777\""));
    }
    Ok(mode)
}

/// The kinds of Key Vault object (`objectType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    /// A secret (including a certificate's backing secret).
    Secret,
    /// A key: its public half is written.
    Key,
    /// A certificate: its leaf is written.
    Cert,
}

impl ObjectType {
    /// The name used in `objectType` and object ids.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Secret => "secret",
            ObjectType::Key => "key",
            ObjectType::Cert => "cert",
        }
    }
}

/// `objectFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectFormat {
    /// PEM (default).
    Pem,
    /// The PKCS#12 as stored (secret of a certificate only).
    Pfx,
}

/// `objectEncoding`: how a secret's value is decoded before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectEncoding {
    /// Written as is (default).
    Utf8,
    /// Hex-decoded.
    Hex,
    /// Base64-decoded (standard alphabet).
    Base64,
}

/// One entry of `objects`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVaultObject {
    /// `objectName`.
    pub name: String,
    /// `objectType`.
    pub object_type: ObjectType,
    /// File path relative to the volume (`objectAlias`, default `objectName`), cleaned; may hold sub-folders.
    pub alias: String,
    /// Pinned version id, or None for latest (also for `objectVersion: latest`).
    pub version: Option<String>,
    /// `objectVersionHistory`: 0 or 1 means only the selected version, as a file named `alias`.
    pub version_history: u32,
    /// `objectFormat`.
    pub format: ObjectFormat,
    /// `objectEncoding`.
    pub encoding: ObjectEncoding,
    /// `filePermission`, overriding the mount's permission.
    pub file_permission: Option<u32>,
}

impl KeyVaultObject {
    /// The object id reported to the driver: `<type>/<name>`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.object_type.as_str(), self.name)
    }
}

#[derive(Deserialize)]
struct ObjectsDoc {
    #[serde(default)]
    array: Vec<String>,
}

/// An integer that may also be written as a string (`3` or `"3"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    Str(String),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawObject {
    #[serde(default)]
    object_name: Option<String>,
    #[serde(default)]
    object_type: Option<String>,
    #[serde(default)]
    object_alias: Option<String>,
    #[serde(default)]
    object_version: Option<String>,
    #[serde(default)]
    object_version_history: Option<IntOrString>,
    #[serde(default)]
    object_format: Option<String>,
    #[serde(default)]
    object_encoding: Option<String>,
    #[serde(default)]
    file_permission: Option<String>,
}

fn yaml_options() -> serde_saphyr::Options {
    // The objects string comes from any user who can create a SecretProviderClass: cap everything so an alias
    // bomb or a deep document costs microseconds, not the provider's memory.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(MAX_INPUT_BYTES);
    budget.max_events = 20_000;
    budget.max_aliases = 64;
    budget.max_anchors = 64;
    budget.max_depth = 16;
    budget.max_documents = 1;
    budget.max_nodes = 10_000;
    budget.max_total_scalar_bytes = MAX_INPUT_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options
}

fn yaml_error(e: &serde_saphyr::Error) -> String {
    // The message may quote input; objects strings hold no secret values, but keep it short.
    let s = e.to_string();
    let first = s.lines().next().unwrap_or("invalid YAML");
    first.chars().take(300).collect()
}

/// Parses the `objects` parameter into validated objects, in order.
pub fn parse_objects(raw: &str) -> Result<Vec<KeyVaultObject>, ParamError> {
    if raw.trim().is_empty() {
        return Err(ParamError::ObjectsNotSet);
    }
    if raw.len() > MAX_INPUT_BYTES {
        return Err(ParamError::Objects(format!("larger than {MAX_INPUT_BYTES} bytes")));
    }
    let options = yaml_options();
    let doc: ObjectsDoc = serde_saphyr::from_str_with_options(raw, options.clone())
        .map_err(|e| ParamError::Objects(yaml_error(&e)))?;
    if doc.array.is_empty() {
        return Err(ParamError::ObjectsNotSet);
    }
    if doc.array.len() > MAX_OBJECTS {
        return Err(ParamError::Objects(format!(
            "{} objects, at most {MAX_OBJECTS} per SecretProviderClass",
            doc.array.len()
        )));
    }
    let mut out = Vec::with_capacity(doc.array.len());
    for (index, item) in doc.array.iter().enumerate() {
        let raw: RawObject = if item.trim().is_empty() {
            RawObject::default()
        } else {
            serde_saphyr::from_str_with_options(item, options.clone()).map_err(|e| ParamError::Object {
                index,
                name: String::new(),
                reason: format!("invalid YAML: {}", yaml_error(&e)),
            })?
        };
        out.push(validate_object(index, raw)?);
    }
    // Two objects writing the same file would make the mount's content depend on order (Azure's provider writes
    // the last one, silently); a file that is also another object's folder cannot be written at all.
    for (index, o) in out.iter().enumerate() {
        if let Some(other) = out[..index].iter().find(|p| paths_collide(&p.alias, &o.alias)) {
            return Err(ParamError::Object {
                index,
                name: o.name.clone(),
                reason: format!(
                    "file name {:?} collides with {:?} of objectName {}: set a unique objectAlias",
                    truncate(&o.alias),
                    truncate(&other.alias),
                    other.name
                ),
            });
        }
    }
    Ok(out)
}

fn validate_object(index: usize, raw: RawObject) -> Result<KeyVaultObject, ParamError> {
    let trim = |s: Option<String>| s.map(|s| s.trim().to_owned()).unwrap_or_default();
    let name = trim(raw.object_name);
    let err = |reason: String| ParamError::Object { index, name: name.clone(), reason };
    if name.is_empty() {
        return Err(err("objectName is not set".into()));
    }
    if !is_key_vault_name(&name) {
        return Err(err(
            "objectName must be 1-127 characters of letters, digits and '-' (a Key Vault object name)".into(),
        ));
    }
    let object_type = match trim(raw.object_type).to_ascii_lowercase().as_str() {
        "secret" => ObjectType::Secret,
        "key" => ObjectType::Key,
        "cert" => ObjectType::Cert,
        "" => return Err(err("objectType is not set: use secret, key or cert".into())),
        other => {
            return Err(err(format!("invalid objectType {:?}: use secret, key or cert", truncate(other))));
        }
    };
    let alias = trim(raw.object_alias);
    let alias = if alias.is_empty() { name.clone() } else { alias };
    let alias =
        validate_file_name(&alias).map_err(|r| err(format!("objectAlias {:?}: {r}", truncate(&alias))))?;
    let version = trim(raw.object_version);
    let version = if version.is_empty() || version.eq_ignore_ascii_case(LATEST_VERSION) {
        None
    } else if version.len() <= 64 && version.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Some(version)
    } else {
        return Err(err(format!(
            "invalid objectVersion {:?}: a Key Vault version id is 32 hex characters",
            truncate(&version)
        )));
    };
    let version_history = match raw.object_version_history {
        None => 0,
        Some(IntOrString::Int(n)) => history(n).map_err(err)?,
        Some(IntOrString::Str(s)) if s.trim().is_empty() => 0,
        Some(IntOrString::Str(s)) => history(
            s.trim()
                .parse::<i64>()
                .map_err(|_| err(format!("invalid objectVersionHistory {:?}", truncate(&s))))?,
        )
        .map_err(err)?,
    };
    let format = match trim(raw.object_format).to_ascii_lowercase().as_str() {
        "" | "pem" => ObjectFormat::Pem,
        "pfx" => ObjectFormat::Pfx,
        _ => return Err(err("invalid objectFormat: use pem or pfx".into())),
    };
    if format == ObjectFormat::Pfx && object_type != ObjectType::Secret {
        return Err(err("PFX format only supported for objectType: secret".into()));
    }
    let encoding = match trim(raw.object_encoding).to_ascii_lowercase().as_str() {
        "" | "utf-8" | "utf8" => ObjectEncoding::Utf8,
        "hex" => ObjectEncoding::Hex,
        "base64" => ObjectEncoding::Base64,
        _ => return Err(err("invalid objectEncoding: use utf-8, hex or base64".into())),
    };
    if encoding != ObjectEncoding::Utf8 && object_type != ObjectType::Secret {
        return Err(err("objectEncoding only supported for objectType: secret".into()));
    }
    let file_permission = match trim(raw.file_permission) {
        p if p.is_empty() => None,
        p => Some(parse_file_permission(&p).map_err(err)?),
    };
    Ok(KeyVaultObject {
        name,
        object_type,
        alias,
        version,
        version_history,
        format,
        encoding,
        file_permission,
    })
}

/// Azure's `IsSyncingSingleVersion`: anything up to 1 (negative included) is the single selected version.
fn history(n: i64) -> Result<u32, String> {
    if n <= 1 {
        return Ok(0);
    }
    u32::try_from(n).ok().filter(|n| *n <= MAX_VERSION_HISTORY).ok_or_else(|| {
        format!("objectVersionHistory {n} is out of range: at most {MAX_VERSION_HISTORY} (an int32, as in Azure's provider)")
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Key Vault object names: 1-127 of `[0-9a-zA-Z-]`.
pub fn is_key_vault_name(s: &str) -> bool {
    (1..=127).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `keyvaultName`: a vault name is 3-24 characters of letters, digits and '-' (Key Vault's own rule), and it
/// becomes a host name, so nothing else may pass.
pub fn parse_vault_name(raw: &str) -> Result<String, ParamError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ParamError::Missing("keyvaultName"));
    }
    if !(3..=24).contains(&name.len()) || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ParamError::Invalid {
            name: "keyvaultName",
            value: truncate(name),
            reason: "a vault name is 3-24 characters of letters, digits and '-'",
        });
    }
    Ok(name.to_owned())
}

/// Longest path the driver writes (Kubernetes' atomic writer: 4096 bytes, 255 per component).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest path component the driver writes.
pub const MAX_PATH_COMPONENT_BYTES: usize = 255;

/// Validates a file path (`objectAlias`, default `objectName`) as Azure's provider does, and returns it in the
/// clean form the driver accepts (no empty or `.` components, no trailing `/`).
///
/// Azure's `validateFileName` refuses only: an empty name, an absolute path, a `..` component and, as a fallback,
/// any `..` substring. Sub-folders (`certs/tls.crt`) are accepted, and the driver creates the folders. On top of
/// that, what the driver itself would refuse at write time is refused here, with the object named: a NUL byte, a
/// path over 4096 bytes or a component over 255 bytes.
pub fn validate_file_name(s: &str) -> Result<String, &'static str> {
    if s.is_empty() {
        return Err("file name must not be empty");
    }
    if s.starts_with('/') {
        return Err("file name must be a relative path");
    }
    if s.split('/').any(|c| c == "..") || s.contains("..") {
        return Err("file name must not contain '..'");
    }
    if s.contains('\0') {
        return Err("file name must not contain NUL");
    }
    let clean: Vec<&str> = s.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if clean.is_empty() {
        return Err("file name must name a file, not the volume's root");
    }
    if clean.iter().any(|c| c.len() > MAX_PATH_COMPONENT_BYTES) {
        return Err("each path component must be at most 255 bytes");
    }
    let clean = clean.join("/");
    if clean.len() > MAX_PATH_BYTES {
        return Err("file path must be at most 4096 bytes");
    }
    Ok(clean)
}

/// Whether two cleaned paths cannot both be written: the same file, or one is a folder of the other.
pub fn paths_collide(a: &str, b: &str) -> bool {
    a == b
        || (a.len() > b.len() && a.starts_with(b) && a.as_bytes()[b.len()] == b'/')
        || (b.len() > a.len() && b.starts_with(a) && b.as_bytes()[a.len()] == b'/')
}

/// The identity a mount authenticates to Entra ID with.
#[derive(Clone, PartialEq, Eq)]
pub enum IdentityRequest {
    /// Workload identity: the pod's service account token (audience api://AzureADTokenExchange) as a client assertion.
    Workload {
        /// `clientID` of the federated app registration or user-assigned identity.
        client_id: String,
        /// The service account token.
        assertion: Zeroizing<String>,
    },
    /// A service principal from the nodePublishSecretRef (`clientid`, `clientsecret`).
    ServicePrincipal {
        /// The app's client id.
        client_id: String,
        /// The client secret.
        client_secret: Zeroizing<String>,
    },
    /// The node's managed identity through IMDS (`useVMManagedIdentity`).
    VmManagedIdentity {
        /// `userAssignedIdentityID` (a client id), or None for the system-assigned identity.
        user_assigned_id: Option<String>,
    },
}

impl fmt::Debug for IdentityRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Workload { client_id, .. } => {
                f.debug_struct("Workload").field("client_id", client_id).finish_non_exhaustive()
            }
            Self::ServicePrincipal { client_id, .. } => {
                f.debug_struct("ServicePrincipal").field("client_id", client_id).finish_non_exhaustive()
            }
            Self::VmManagedIdentity { user_assigned_id } => {
                f.debug_struct("VmManagedIdentity").field("user_assigned_id", user_assigned_id).finish()
            }
        }
    }
}

impl IdentityRequest {
    /// Which identity, for error messages: the mode and its client id (never a secret or a token), and what to
    /// check when Entra ID refuses it. `pod` gives the service account of a workload identity.
    pub fn describe(&self, pod: &PodInfo) -> String {
        match self {
            Self::Workload { client_id, .. } => format!(
                "workload identity (clientID {client_id}, service account {}/{}; check that the identity has a federated credential for system:serviceaccount:{}:{})",
                pod.namespace, pod.service_account, pod.namespace, pod.service_account
            ),
            Self::ServicePrincipal { client_id, .. } => format!(
                "service principal (clientid {client_id} from nodePublishSecretRef; check its clientsecret and that it is not expired)"
            ),
            Self::VmManagedIdentity { user_assigned_id: Some(id) } => format!(
                "VM managed identity (userAssignedIdentityID {id}; check that it is assigned to the node's VM or scale set)"
            ),
            Self::VmManagedIdentity { user_assigned_id: None } => {
                "VM managed identity (system-assigned; check that the node's VM or scale set has one)"
                    .to_owned()
            }
        }
    }

    /// Short label for metrics and logs.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Workload { .. } => "workload_identity",
            Self::ServicePrincipal { .. } => "service_principal",
            Self::VmManagedIdentity { .. } => "vm_managed_identity",
        }
    }
}

/// The clouds selectable with `cloudName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudName {
    /// AzurePublicCloud (default).
    Public,
    /// AzureUSGovernmentCloud.
    UsGovernment,
    /// AzureChinaCloud.
    China,
    /// AzureStackCloud: endpoints from the JSON file named by `cloudEnvFileName` on the node.
    Stack {
        /// Absolute path of the Azure environment JSON file.
        env_file: String,
    },
}

impl CloudName {
    /// Parses `cloudName` as Azure's provider does (case-insensitive; empty is the public cloud; the SDK's
    /// `AzureCloud` and `AzureUSGovernment` spellings too). `AzureStackCloud` takes its endpoints from
    /// `cloudEnvFileName`, which must then be an absolute path without `..`.
    pub fn parse(name: &str, env_file: Option<&str>) -> Result<CloudName, ParamError> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "" | "azurepubliccloud" | "azurecloud" => CloudName::Public,
            "azureusgovernmentcloud" | "azureusgovernment" => CloudName::UsGovernment,
            "azurechinacloud" => CloudName::China,
            "azurestackcloud" => {
                let env_file = env_file
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .ok_or(ParamError::Missing("cloudEnvFileName"))?;
                if !env_file.starts_with('/') || env_file.split('/').any(|s| s == "..") {
                    return Err(ParamError::Invalid {
                        name: "cloudEnvFileName",
                        value: truncate(env_file),
                        reason: "must be an absolute path on the node, without '..'",
                    });
                }
                CloudName::Stack { env_file: env_file.to_owned() }
            }
            other => {
                return Err(ParamError::Invalid {
                    name: "cloudName",
                    value: truncate(other),
                    reason: "use AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud or AzureStackCloud",
                });
            }
        })
    }

    /// (Entra ID authority host, Key Vault DNS suffix) of a known cloud; None for AzureStackCloud, whose
    /// endpoints come from its environment file or the operator's overrides.
    pub fn known_endpoints(&self) -> Option<(&'static str, &'static str)> {
        match self {
            CloudName::Public => Some(("https://login.microsoftonline.com", "vault.azure.net")),
            CloudName::UsGovernment => Some(("https://login.microsoftonline.us", "vault.usgovcloudapi.net")),
            CloudName::China => Some(("https://login.chinacloudapi.cn", "vault.azure.cn")),
            CloudName::Stack { .. } => None,
        }
    }
}

/// The pod the mount is for, as the driver describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Service account name.
    pub service_account: String,
}

/// A mount request's parameters, parsed and validated.
#[derive(Debug, Clone)]
pub struct MountParams {
    /// `keyvaultName`.
    pub keyvault_name: String,
    /// `tenantID` / `tenantId`.
    pub tenant_id: String,
    /// `cloudName` (+ `cloudEnvFileName`).
    pub cloud: CloudName,
    /// How to authenticate.
    pub identity: IdentityRequest,
    /// The objects to fetch.
    pub objects: Vec<KeyVaultObject>,
    /// Mode of files without `filePermission`.
    pub default_mode: u32,
    /// The pod.
    pub pod: PodInfo,
}

fn parse_bool(attrs: &Attributes, name: &'static str) -> Result<bool, ParamError> {
    // strconv.ParseBool's accepted spellings, as Azure's provider uses it.
    match attrs.get(name).map(|s| s.trim()) {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => {
            Err(ParamError::Invalid { name, value: truncate(other), reason: "expected true or false" })
        }
    }
}

#[derive(Deserialize)]
struct ServiceAccountToken {
    token: String,
}

fn workload_identity_token(
    attrs: &Attributes,
    secrets: &Secrets,
) -> Result<Option<Zeroizing<String>>, ParamError> {
    let raw = attrs
        .get(keys::SERVICE_ACCOUNT_TOKENS)
        .map(String::as_str)
        .or_else(|| secrets.get_ignore_case(keys::SERVICE_ACCOUNT_TOKENS));
    let Some(raw) = raw.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let tokens: BTreeMap<String, ServiceAccountToken> = serde_json::from_str(raw).map_err(|e| {
        ParamError::Attributes(format!("{}: {}", keys::SERVICE_ACCOUNT_TOKENS, json_error(&e)))
    })?;
    Ok(tokens
        .into_iter()
        .find(|(aud, _)| aud == WORKLOAD_IDENTITY_AUDIENCE)
        .map(|(_, t)| Zeroizing::new(t.token))
        .filter(|t| !t.is_empty()))
}

/// Builds [`MountParams`] from the three strings of a `MountRequest`.
pub fn parse_mount(attributes: &str, secrets: &str, permission: &str) -> Result<MountParams, ParamError> {
    let attrs = parse_attributes(attributes)?;
    let secrets = parse_secrets(secrets)?;
    let default_mode = parse_permission(permission)?;
    let get = |k: &str| attrs.get(k).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());

    let keyvault_name = parse_vault_name(&get("keyvaultName").unwrap_or_default())?;
    let tenant_id = get("tenantID").or_else(|| get("tenantId")).ok_or(ParamError::Missing("tenantId"))?;
    // A tenant is a GUID or a domain name; it becomes a URL path segment.
    if tenant_id.len() > 253
        || !tenant_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(ParamError::Invalid {
            name: "tenantId",
            value: truncate(&tenant_id),
            reason: "a tenant is a GUID or a domain name",
        });
    }
    let cloud = CloudName::parse(&get("cloudName").unwrap_or_default(), get("cloudEnvFileName").as_deref())?;

    let pod_identity = parse_bool(&attrs, "usePodIdentity")?;
    let vm_identity = parse_bool(&attrs, "useVMManagedIdentity")?;
    let token_proxy = parse_bool(&attrs, "useAzureTokenProxy")?;
    if [pod_identity, vm_identity, token_proxy].iter().filter(|b| **b).count() > 1 {
        return Err(ParamError::IdentityModes);
    }
    if pod_identity {
        return Err(ParamError::PodIdentity);
    }
    if token_proxy {
        return Err(ParamError::TokenProxy);
    }
    let identity = if vm_identity {
        IdentityRequest::VmManagedIdentity { user_assigned_id: get("userAssignedIdentityID") }
    } else if let Some(client_id) = get("clientID") {
        let assertion =
            workload_identity_token(&attrs, &secrets)?.ok_or(ParamError::NoWorkloadIdentityToken)?;
        IdentityRequest::Workload { client_id, assertion }
    } else {
        match (
            secrets.get_ignore_case("clientid").filter(|s| !s.is_empty()),
            secrets.get_ignore_case("clientsecret").filter(|s| !s.is_empty()),
        ) {
            (Some(id), Some(secret)) => IdentityRequest::ServicePrincipal {
                client_id: id.trim().to_owned(),
                client_secret: Zeroizing::new(secret.to_owned()),
            },
            (Some(_), None) => return Err(ParamError::Missing("clientsecret in nodePublishSecretRef")),
            (None, Some(_)) => return Err(ParamError::Missing("clientid in nodePublishSecretRef")),
            (None, None) => return Err(ParamError::NoIdentity),
        }
    };

    let objects = parse_objects(attrs.get("objects").map(String::as_str).unwrap_or(""))?;
    let pod = PodInfo {
        namespace: get(keys::POD_NAMESPACE).unwrap_or_default(),
        name: get(keys::POD_NAME).unwrap_or_default(),
        uid: get(keys::POD_UID).unwrap_or_default(),
        service_account: get(keys::SERVICE_ACCOUNT_NAME).unwrap_or_default(),
    };
    Ok(MountParams { keyvault_name, tenant_id, cloud, identity, objects, default_mode, pod })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJECTS: &str = "array:\n  - |\n    objectName: db-password\n    objectType: secret\n    objectAlias: DB_PASSWORD\n    objectVersionHistory: 3\n    filePermission: \"0600\"\n  - |\n    objectName: tls\n    objectType: cert\n";

    #[test]
    fn objects_parse_like_azure() {
        let objs = parse_objects(OBJECTS).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].alias, "DB_PASSWORD");
        assert_eq!(objs[0].version_history, 3);
        assert_eq!(objs[0].file_permission, Some(0o600));
        assert_eq!(objs[1].alias, "tls");
        assert_eq!(objs[1].id(), "cert/tls");
    }

    #[test]
    fn bad_file_permission_is_an_error_not_mode_zero() {
        let e = parse_objects(
            "array:\n  - |\n    objectName: a\n    objectType: secret\n    filePermission: \"0999\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid filePermission"), "{e}");
    }

    #[test]
    fn azure_error_wording() {
        let e =
            parse_objects("array:\n  - |\n    objectName: a\n    objectType: key\n    objectFormat: pfx\n")
                .unwrap_err();
        assert!(e.to_string().contains("PFX format only supported for objectType: secret"));
        let e = parse_objects(
            "array:\n  - |\n    objectName: a\n    objectType: cert\n    objectEncoding: hex\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("objectEncoding only supported for objectType: secret"));
        assert_eq!(parse_objects("").unwrap_err().to_string(), "objects is not set");
        let e = parse_mount(r#"{"tenantID":"t"}"#, "null", "420").unwrap_err();
        assert_eq!(e.to_string(), "keyvaultName is not provided");
        let e = parse_mount(r#"{"keyvaultName":"kv1"}"#, "null", "420").unwrap_err();
        assert_eq!(e.to_string(), "tenantId is not provided");
    }

    #[test]
    fn permission_forms() {
        assert_eq!(parse_permission("420").unwrap(), 0o644);
        assert_eq!(parse_permission("\"420\"").unwrap(), 0o644);
        assert!(parse_permission("512").is_err());
        assert!(parse_permission("-1").is_err());
        assert!(parse_permission("").is_err());
    }

    #[test]
    fn secrets_null_and_case_insensitive() {
        assert!(parse_secrets("null").unwrap().is_empty());
        let s = parse_secrets(r#"{"ClientID":"id","clientsecret":"pw"}"#).unwrap();
        assert_eq!(s.get_ignore_case("clientid"), Some("id"));
        assert!(!format!("{s:?}").contains("pw"));
    }

    #[test]
    fn identity_modes() {
        let base = |extra: &str| {
            format!(
                r#"{{"keyvaultName":"kv1","tenantID":"t","objects":"array:\n  - |\n    objectName: a\n    objectType: secret\n"{extra}}}"#
            )
        };
        let e = parse_mount(&base(r#","usePodIdentity":"true""#), "null", "420").unwrap_err();
        assert_eq!(e, ParamError::PodIdentity);
        let e =
            parse_mount(&base(r#","usePodIdentity":"true","useVMManagedIdentity":"true""#), "null", "420")
                .unwrap_err();
        assert_eq!(e.to_string(), "only one identity mode can be enabled at a time");
        let p = parse_mount(
            &base(r#","useVMManagedIdentity":"true","userAssignedIdentityID":"u""#),
            "null",
            "420",
        )
        .unwrap();
        assert_eq!(p.identity, IdentityRequest::VmManagedIdentity { user_assigned_id: Some("u".into()) });
        let e = parse_mount(&base(r#","clientID":"c""#), "null", "420").unwrap_err();
        assert_eq!(e, ParamError::NoWorkloadIdentityToken);
        let tokens = r#"{\"api://AzureADTokenExchange\":{\"token\":\"jwt\",\"expirationTimestamp\":\"2030-01-01T00:00:00Z\"}}"#;
        let p = parse_mount(
            &base(&format!(r#","clientID":"c","csi.storage.k8s.io/serviceAccount.tokens":"{tokens}""#)),
            "null",
            "420",
        )
        .unwrap();
        assert_eq!(p.identity.mode(), "workload_identity");
        let p = parse_mount(&base(""), r#"{"clientid":"c","clientsecret":"s"}"#, "420").unwrap();
        assert_eq!(p.identity.mode(), "service_principal");
        assert_eq!(parse_mount(&base(""), "null", "420").unwrap_err(), ParamError::NoIdentity);
    }

    #[test]
    fn alias_bomb_is_bounded() {
        let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..20 {
            let prev = if i == 0 { "a".to_string() } else { format!("a{}", i - 1) };
            s.push_str(&format!(
                "a{i}: &a{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        s.push_str("array: []\n");
        assert!(parse_objects(&s).is_err());
    }

    #[test]
    fn unsafe_aliases_rejected() {
        // Azure's rule: no absolute path, no '..' (component or substring); plus what the driver cannot write.
        for alias in ["../x", "..", ".", "/etc/passwd", "a/../b", "a..b", "./", "x/\\u0000"] {
            let y = format!(
                "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectAlias: \"{alias}\"\n"
            );
            assert!(parse_objects(&y).is_err(), "{alias}");
        }
        assert!(validate_file_name(&"x".repeat(256)).is_err());
    }

    #[test]
    fn sub_folder_aliases_accepted_and_cleaned() {
        for (alias, clean) in
            [("certs/tls.crt", "certs/tls.crt"), ("folder//x/", "folder/x"), ("./a/./b", "a/b")]
        {
            let y = format!(
                "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectAlias: \"{alias}\"\n"
            );
            assert_eq!(parse_objects(&y).unwrap()[0].alias, clean, "{alias}");
        }
        let e = parse_objects(
            "array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: b\n    objectType: secret\n    objectAlias: a/b\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("collides with \"a\" of objectName a"), "{e}");
    }

    #[test]
    fn history_and_latest_like_azure() {
        let one = |extra: &str| {
            parse_objects(&format!("array:\n  - |\n    objectName: a\n    objectType: secret\n{extra}"))
        };
        assert_eq!(one("    objectVersionHistory: 200\n").unwrap()[0].version_history, 200);
        assert_eq!(one("    objectVersionHistory: -3\n").unwrap()[0].version_history, 0);
        assert!(one("    objectVersionHistory: 4294967296\n").is_err());
        let o = one("    objectVersion: latest\n    objectVersionHistory: 2\n").unwrap();
        assert_eq!((o[0].version.clone(), o[0].version_history), (None, 2));
        assert!(parse_file_permission("0o644").is_err(), "Go's ParseInt(s, 8) takes no 0o prefix");
        assert_eq!(parse_file_permission("0644").unwrap(), 0o644);
    }
}
