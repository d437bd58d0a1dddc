//! `spec.template.data`: rendered by [`arcseal_template`] exactly as sealed-secrets renders it (Go text/template +
//! Sprig, each entry named after its key, over the decrypted items as Go strings). `arcseal unseal` uses the same
//! function, so offline recovery gives what the cluster gives.
//!
//! Errors name the template key, the position and the template's own source; the engine never quotes a value, and
//! [`super::redact`] checks that once more before an error leaves the controller.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

/// Decrypted items by name. Values are wiped on drop.
pub type Items = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// The engine's bounds in the controller: 1 MiB of output (a Secret cannot be larger), a million steps.
pub fn limits() -> arcseal_template::Limits {
    arcseal_template::Limits::default()
}

/// Renders every entry of `templates` over `items`; the first failing entry's key and error.
pub fn render_all(
    templates: &BTreeMap<String, String>,
    items: &Items,
) -> Result<Items, (String, arcseal_template::Error)> {
    arcseal_template::render_template_data(templates, items, &limits()).map_err(|e| {
        let key = match &e {
            arcseal_template::Error::Parse { name, .. }
            | arcseal_template::Error::Exec { name, .. }
            | arcseal_template::Error::Unsupported { name, .. }
            | arcseal_template::Error::Limit { name, .. } => name.clone(),
            _ => String::new(),
        };
        (key, e)
    })
}
