//! Prints the SealedSecret CRD generated from the Rust types, or with `--write` writes it where the installs take
//! it from: `deploy/crds/sealedsecret.yaml` (Kustomize) and the Helm chart's `crds/` copy (Helm reads files only
//! inside a chart). A unit test fails while either is stale.
#![forbid(unsafe_code)]

use std::path::Path;

fn main() -> std::io::Result<()> {
    let yaml = arcseal_controller::unseal::crd::crd_yaml();
    if std::env::args().nth(1).as_deref() != Some("--write") {
        print!("{yaml}");
        return Ok(());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for place in arcseal_controller::unseal::crd::CRD_PLACES {
        std::fs::write(root.join(place), &yaml)?;
        eprintln!("wrote {place}");
    }
    Ok(())
}
