//! `arcseal-controller`: the unseal controller and the CSI provider (not yet built).
fn main() {
    eprintln!("arcseal-controller: no subcommand is implemented yet");
    std::process::exit(2);
}
