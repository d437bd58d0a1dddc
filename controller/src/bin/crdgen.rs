//! Prints the SealedSecret CRD generated from the Rust types:
//! `cargo run -p arcseal-controller --bin crdgen > deploy/crds/sealedsecret.yaml`.
#![forbid(unsafe_code)]

fn main() {
    print!("{}", arcseal_controller::unseal::crd::crd_yaml());
}
