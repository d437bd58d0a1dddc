//! PEM armour (RFC 7468) for files that may hold several blocks (a key next to its certificate,
//! a certificate chain). Returns the DER of each block with its label; reading stops at nothing but
//! malformed armour.

use zeroize::Zeroizing;

/// One decoded PEM block. `der` is wiped on drop because it may be a private key.
pub(crate) struct PemBlock {
    pub label: String,
    pub der: Zeroizing<Vec<u8>>,
    /// Legacy OpenSSL encrypted PEM (`Proc-Type: 4,ENCRYPTED` headers).
    pub encrypted: bool,
}

/// Finds every `-----BEGIN X-----` ... `-----END X-----` block in `text`.
pub(crate) fn blocks(text: &[u8]) -> Result<Vec<PemBlock>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the file is not UTF-8 text".to_owned())?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let label_end = after.find("-----").ok_or("unterminated BEGIN line")?;
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let end =
            rest[start..].find(&end_marker).ok_or_else(|| format!("no END line for the {label} block"))?;
        let block = &rest[start..start + end + end_marker.len()];
        let encrypted = block.contains("Proc-Type: 4,ENCRYPTED");
        let der = if encrypted {
            Zeroizing::new(Vec::new())
        } else {
            let (_, der) = pem_rfc7468::decode_vec(block.as_bytes())
                .map_err(|e| format!("malformed {label} block: {e}"))?;
            Zeroizing::new(der)
        };
        out.push(PemBlock { label: label.to_owned(), der, encrypted });
        rest = &rest[start + end + end_marker.len()..];
    }
    Ok(out)
}

/// Armours DER with `label`, LF line endings, 64-column lines.
pub(crate) fn encode(label: &str, der: &[u8]) -> Result<Zeroizing<String>, String> {
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der)
        .map(Zeroizing::new)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_several_blocks_and_flags_encrypted_ones() {
        let a = encode("CERTIFICATE", b"abc").unwrap();
        let b = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let text = format!("junk\n{}{b}", a.as_str());
        let found = blocks(text.as_bytes()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].label, "CERTIFICATE");
        assert_eq!(found[0].der.as_slice(), b"abc");
        assert!(found[1].encrypted);
    }

    #[test]
    fn unterminated_block_is_an_error() {
        assert!(blocks(b"-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
        assert!(blocks(b"no pem here").unwrap().is_empty());
    }
}
