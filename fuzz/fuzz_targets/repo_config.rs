//! The repository config (`.arcseal.yaml`) on arbitrary input: the schema, the glob compiler and the
//! overlap check, then routing a few paths. Errors are fine; panics and hangs are not.
#![no_main]

use std::path::Path;

use arcseal::repo_config::RepoConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = RepoConfig::parse(Path::new("/repo/.arcseal.yaml"), text) {
        for line in text.lines().take(8) {
            let _ = config.cluster_for(&Path::new("/repo").join(line.trim()));
        }
    }
});
