//! Renders arbitrary template sources over arbitrary item values with tight limits: whatever the input, the engine
//! returns (output or error) without panicking, hanging or allocating past its bounds.
#![no_main]

use std::collections::BTreeMap;

use arcseal_template::{Limits, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // First byte: how to split the input into a template and two item values.
    let Some((&cut, rest)) = input.split_first() else { return };
    let at = usize::from(cut).min(rest.len());
    let (src, value) = rest.split_at(at);
    let src = String::from_utf8_lossy(src);
    let data = BTreeMap::from([("a".to_string(), value.to_vec()), ("b".to_string(), src.as_bytes().to_vec())]);
    let limits = Limits { max_output: 1 << 16, max_steps: 100_000, max_depth: 30, max_range: 10_000 };
    let _ = render("key", &src, &data, &limits);
});
