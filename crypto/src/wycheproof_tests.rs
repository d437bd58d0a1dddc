//! Wycheproof vectors for the two primitives exactly as the value format uses them: RSA-OAEP with
//! SHA-256 and MGF1-SHA-256 (labels included) and AES-256-GCM with a 96-bit nonce and 128-bit tag.

use wycheproof::TestResult;

use crate::keys::PrivateKey;
use crate::value::{aes_256_gcm_open, rsa_oaep_decrypt};

fn acceptable(result: TestResult, ok: bool) -> bool {
    match result {
        TestResult::Valid => ok,
        TestResult::Invalid => !ok,
        TestResult::Acceptable => true,
    }
}

#[test]
fn rsa_oaep_sha256_mgf1_sha256() {
    use wycheproof::rsa_oaep::{TestName, TestSet};
    let mut checked = 0;
    for name in [
        TestName::Rsa2048Sha256Mgf1Sha256,
        TestName::Rsa3072Sha256Mgf1Sha256,
        TestName::Rsa4096Sha256Mgf1Sha256,
    ] {
        let set = TestSet::load(name).unwrap();
        for group in set.test_groups {
            let key = PrivateKey::from_pkcs8_der(&group.pkcs8).unwrap();
            for test in group.tests {
                let got = rsa_oaep_decrypt(&key, &test.label, &test.ct);
                let ok = matches!(&got, Ok(pt) if pt.as_slice() == &test.pt[..]);
                assert!(
                    acceptable(test.result, ok),
                    "{name:?} tc {} ({}): got ok={ok}",
                    test.tc_id,
                    test.comment
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} vectors ran");
}

#[test]
fn aes_256_gcm_with_96_bit_nonce() {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::AesGcm).unwrap();
    let mut checked = 0;
    for group in set.test_groups {
        if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
            continue;
        }
        for test in group.tests {
            let key: &[u8; 32] = test.key[..].try_into().unwrap();
            let nonce: &[u8; 12] = test.nonce[..].try_into().unwrap();
            let mut sealed = test.ct.to_vec();
            sealed.extend_from_slice(&test.tag);
            let got = aes_256_gcm_open(key, nonce, &test.aad, &sealed);
            let ok = matches!(&got, Ok(pt) if pt.as_slice() == &test.pt[..]);
            assert!(acceptable(test.result, ok), "tc {} ({}): got ok={ok}", test.tc_id, test.comment);
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} vectors ran");
}
