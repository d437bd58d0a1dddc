//! Reading a PKCS#12 (PFX, RFC 7292) protected by the empty password, as Azure Key Vault stores a certificate's
//! secret (`contentType: application/x-pkcs12`): the private key as PKCS#8 DER, and the certificates ordered leaf ->
//! intermediates -> root.
//!
//! Supported protection, which covers Key Vault, .NET, OpenSSL 1.x and 3.x and Java exports:
//! - PBES2 (RFC 8018) with PBKDF2-HMAC-SHA1/256/384/512 and AES-128/192/256-CBC (aws-lc-rs);
//! - pbeWithSHAAnd3-KeyTripleDES-CBC (RFC 7292 appendix C) with the PKCS#12 key derivation over SHA-1;
//! - pbeWithSHAAnd128BitRC2-CBC and pbeWithSHAAnd40BitRC2-CBC (OpenSSL 1.x's default for certificates);
//! - the MAC (HMAC-SHA1/256/384/512 with the PKCS#12 KDF) is verified when present, which also tells which of the
//!   two encodings of "no password" (an empty BMPString with its terminator, or no bytes at all) the writer used.
//!
//! The container is read with a small BER reader (definite and indefinite lengths, constructed OCTET STRINGs),
//! because Windows and Java write PFX files in BER, which a strict DER decoder rejects. Decrypted keys are checked
//! to be PKCS#8 with the `pkcs8` crate; certificates are parsed with `x509-cert` to order them.
//!
//! Limits against hostile input: nesting depth 32, at most 64 bags, 1,000,000 KDF iterations.

use std::borrow::Cow;
use std::num::NonZeroU32;

use der::Decode;
use der::asn1::ObjectIdentifier;
use zeroize::Zeroizing;

/// Why a PFX could not be read. Deliberately coarse: it never says anything about the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs12Error {
    /// Not a PKCS#12 structure we can read.
    #[error("not a valid PKCS#12 file: {0}")]
    Malformed(&'static str),
    /// An encryption or MAC algorithm we do not implement.
    #[error("unsupported PKCS#12 algorithm {0}")]
    Unsupported(String),
    /// The MAC does not verify with an empty password, or decryption failed.
    #[error("the PKCS#12 file is not protected by an empty password (or is corrupt)")]
    WrongPassword,
    /// Resource limits.
    #[error("the PKCS#12 file exceeds a limit: {0}")]
    TooLarge(&'static str),
}

type Result<T> = std::result::Result<T, Pkcs12Error>;

/// What a PFX holds.
pub struct Pkcs12Contents {
    /// The first private key, as PKCS#8 `PrivateKeyInfo` DER.
    pub private_key_pkcs8: Option<Zeroizing<Vec<u8>>>,
    /// Certificates (DER), leaf first, then each issuer; those outside the chain follow in file order.
    pub certificates: Vec<Vec<u8>>,
}

const MAX_DEPTH: usize = 32;
const MAX_BAGS: usize = 64;
const MAX_ITERATIONS: u64 = 1_000_000;

mod oid {
    use der::asn1::ObjectIdentifier as O;
    pub const DATA: O = O::new_unwrap("1.2.840.113549.1.7.1");
    pub const ENCRYPTED_DATA: O = O::new_unwrap("1.2.840.113549.1.7.6");
    pub const KEY_BAG: O = O::new_unwrap("1.2.840.113549.1.12.10.1.1");
    pub const SHROUDED_KEY_BAG: O = O::new_unwrap("1.2.840.113549.1.12.10.1.2");
    pub const CERT_BAG: O = O::new_unwrap("1.2.840.113549.1.12.10.1.3");
    pub const X509_CERTIFICATE: O = O::new_unwrap("1.2.840.113549.1.9.22.1");
    pub const PBES2: O = O::new_unwrap("1.2.840.113549.1.5.13");
    pub const PBKDF2: O = O::new_unwrap("1.2.840.113549.1.5.12");
    pub const HMAC_SHA1: O = O::new_unwrap("1.2.840.113549.2.7");
    pub const HMAC_SHA256: O = O::new_unwrap("1.2.840.113549.2.9");
    pub const HMAC_SHA384: O = O::new_unwrap("1.2.840.113549.2.10");
    pub const HMAC_SHA512: O = O::new_unwrap("1.2.840.113549.2.11");
    pub const AES128_CBC: O = O::new_unwrap("2.16.840.1.101.3.4.1.2");
    pub const AES192_CBC: O = O::new_unwrap("2.16.840.1.101.3.4.1.22");
    pub const AES256_CBC: O = O::new_unwrap("2.16.840.1.101.3.4.1.42");
    pub const DES_EDE3_CBC: O = O::new_unwrap("1.2.840.113549.3.7");
    pub const PBE_SHA1_3DES: O = O::new_unwrap("1.2.840.113549.1.12.1.3");
    pub const PBE_SHA1_RC2_128: O = O::new_unwrap("1.2.840.113549.1.12.1.5");
    pub const PBE_SHA1_RC2_40: O = O::new_unwrap("1.2.840.113549.1.12.1.6");
    pub const SHA1: O = O::new_unwrap("1.3.14.3.2.26");
    pub const SHA256: O = O::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub const SHA384: O = O::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub const SHA512: O = O::new_unwrap("2.16.840.1.101.3.4.2.3");
}

// --- A minimal BER reader ---------------------------------------------------------------------------------------

const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
const OCTET_STRING_CONSTRUCTED: u8 = 0x24;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;
const CONTEXT_0_PRIMITIVE: u8 = 0x80;

#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    /// The content octets (for indefinite lengths: up to, not including, the end-of-contents).
    content: &'a [u8],
}

impl<'a> Tlv<'a> {
    fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    fn children(&self, depth: usize) -> Result<Children<'a>> {
        if !self.constructed() {
            return Err(Pkcs12Error::Malformed("expected a constructed value"));
        }
        Ok(Children { rest: self.content, depth: depth + 1 })
    }

    fn expect(self, tag: u8) -> Result<Self> {
        if self.tag == tag { Ok(self) } else { Err(Pkcs12Error::Malformed("unexpected tag")) }
    }

    /// The bytes of an OCTET STRING (primitive or constructed) or of an implicitly tagged one.
    fn octets(&self, depth: usize) -> Result<Cow<'a, [u8]>> {
        if !self.constructed() {
            return Ok(Cow::Borrowed(self.content));
        }
        let mut out = Vec::new();
        let mut c = self.children(depth)?;
        while let Some(part) = c.next_tlv()? {
            if part.tag != OCTET_STRING && part.tag != OCTET_STRING_CONSTRUCTED {
                return Err(Pkcs12Error::Malformed("constructed OCTET STRING with a non-OCTET STRING part"));
            }
            out.extend_from_slice(&part.octets(c.depth)?);
        }
        Ok(Cow::Owned(out))
    }

    fn oid(&self) -> Result<ObjectIdentifier> {
        if self.tag != OID {
            return Err(Pkcs12Error::Malformed("expected an OBJECT IDENTIFIER"));
        }
        ObjectIdentifier::from_bytes(self.content)
            .map_err(|_| Pkcs12Error::Malformed("bad OBJECT IDENTIFIER"))
    }

    fn small_uint(&self) -> Result<u64> {
        if self.tag != INTEGER || self.content.is_empty() || self.content[0] & 0x80 != 0 {
            return Err(Pkcs12Error::Malformed("expected a non-negative INTEGER"));
        }
        let digits = match self.content {
            [0, rest @ ..] => rest,
            all => all,
        };
        if digits.len() > 7 {
            return Err(Pkcs12Error::TooLarge("integer"));
        }
        Ok(digits.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
    }
}

struct Children<'a> {
    rest: &'a [u8],
    depth: usize,
}

impl<'a> Children<'a> {
    fn next_tlv(&mut self) -> Result<Option<Tlv<'a>>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (tlv, rest) = read_tlv(self.rest, self.depth)?;
        self.rest = rest;
        Ok(Some(tlv))
    }

    fn need(&mut self) -> Result<Tlv<'a>> {
        self.next_tlv()?.ok_or(Pkcs12Error::Malformed("a required field is missing"))
    }
}

fn parse_one(input: &[u8]) -> Result<Tlv<'_>> {
    let (tlv, _rest) = read_tlv(input, 0)?;
    Ok(tlv)
}

/// Reads one TLV; returns it and what follows.
fn read_tlv(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8])> {
    if depth > MAX_DEPTH {
        return Err(Pkcs12Error::TooLarge("nesting depth"));
    }
    let (&tag, rest) = input.split_first().ok_or(Pkcs12Error::Malformed("truncated"))?;
    if tag & 0x1f == 0x1f {
        return Err(Pkcs12Error::Malformed("high tag numbers are not used by PKCS#12"));
    }
    let (&first, rest) = rest.split_first().ok_or(Pkcs12Error::Malformed("truncated"))?;
    if first == 0x80 {
        // Indefinite length: only for constructed values; find the matching end-of-contents.
        if tag & 0x20 == 0 {
            return Err(Pkcs12Error::Malformed("indefinite length on a primitive value"));
        }
        let mut pos = 0;
        loop {
            let here = &rest[pos..];
            if here.len() >= 2 && here[0] == 0 && here[1] == 0 {
                return Ok((Tlv { tag, content: &rest[..pos] }, &rest[pos + 2..]));
            }
            let (_, after) = read_tlv(here, depth + 1)?;
            pos = rest.len() - after.len();
        }
    }
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(Pkcs12Error::Malformed("bad length"));
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(Pkcs12Error::Malformed("truncated"));
    }
    Ok((Tlv { tag, content: &rest[..len] }, &rest[len..]))
}

// --- Key derivation and ciphers ---------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest_alg(self) -> &'static aws_lc_rs::digest::Algorithm {
        match self {
            Hash::Sha1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &aws_lc_rs::digest::SHA256,
            Hash::Sha384 => &aws_lc_rs::digest::SHA384,
            Hash::Sha512 => &aws_lc_rs::digest::SHA512,
        }
    }

    fn hmac_alg(self) -> aws_lc_rs::hmac::Algorithm {
        match self {
            Hash::Sha1 => aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => aws_lc_rs::hmac::HMAC_SHA256,
            Hash::Sha384 => aws_lc_rs::hmac::HMAC_SHA384,
            Hash::Sha512 => aws_lc_rs::hmac::HMAC_SHA512,
        }
    }

    fn block_len(self) -> usize {
        match self {
            Hash::Sha1 | Hash::Sha256 => 64,
            Hash::Sha384 | Hash::Sha512 => 128,
        }
    }
}

fn iterations(n: u64) -> Result<NonZeroU32> {
    if n > MAX_ITERATIONS {
        return Err(Pkcs12Error::TooLarge("iteration count"));
    }
    NonZeroU32::new(u32::try_from(n).map_err(|_| Pkcs12Error::TooLarge("iteration count"))?)
        .ok_or(Pkcs12Error::Malformed("zero iterations"))
}

/// The PKCS#12 key derivation (RFC 7292 appendix B.2). `id`: 1 key, 2 IV, 3 MAC key.
fn pkcs12_kdf(
    hash: Hash,
    password: &[u8],
    salt: &[u8],
    id: u8,
    iter: NonZeroU32,
    n: usize,
) -> Zeroizing<Vec<u8>> {
    let v = hash.block_len();
    let fill = |src: &[u8]| -> Zeroizing<Vec<u8>> {
        if src.is_empty() {
            return Zeroizing::new(Vec::new());
        }
        let len = v * src.len().div_ceil(v);
        Zeroizing::new(src.iter().cycle().take(len).copied().collect())
    };
    let mut i_buf = fill(salt);
    i_buf.extend_from_slice(&fill(password));
    let mut out = Zeroizing::new(Vec::with_capacity(n));
    while out.len() < n {
        let mut ctx = aws_lc_rs::digest::Context::new(hash.digest_alg());
        ctx.update(&vec![id; v]);
        ctx.update(&i_buf);
        let mut a = Zeroizing::new(ctx.finish().as_ref().to_vec());
        for _ in 1..iter.get() {
            *a = aws_lc_rs::digest::digest(hash.digest_alg(), &a).as_ref().to_vec();
        }
        let take = (n - out.len()).min(a.len());
        out.extend_from_slice(&a[..take]);
        if out.len() >= n {
            break;
        }
        let b: Zeroizing<Vec<u8>> = Zeroizing::new(a.iter().cycle().take(v).copied().collect());
        for block in i_buf.chunks_mut(v) {
            // block = (block + b + 1) mod 2^(8v)
            let mut carry = 1u16;
            for k in (0..v).rev() {
                let sum = u16::from(block[k]) + u16::from(b[k]) + carry;
                block[k] = sum.to_le_bytes()[0];
                carry = sum >> 8;
            }
        }
    }
    out
}

/// The two ways writers encode "no password" for the PKCS#12 KDF: BMPString "" with its 2-byte terminator
/// (OpenSSL, .NET), and no bytes at all (some Java and Windows writers).
const EMPTY_PASSWORDS: [&[u8]; 2] = [&[0, 0], &[]];

fn aes_cbc_decrypt(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use aws_lc_rs::cipher::{
        AES_128, AES_192, AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey,
    };
    let alg = match key.len() {
        16 => &AES_128,
        24 => &AES_192,
        32 => &AES_256,
        _ => return None,
    };
    let iv: [u8; 16] = iv.try_into().ok()?;
    let key = PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(alg, key).ok()?).ok()?;
    let mut buf = Zeroizing::new(data.to_vec());
    let plain_len = key.decrypt(&mut buf, DecryptionContext::Iv128(iv.into())).ok()?.len();
    buf.truncate(plain_len);
    Some(buf)
}

/// 3DES-CBC and RC2-CBC are legacy ciphers used only to read old PKCS#12 files. aws-lc-rs offers 3DES only behind
/// its `legacy-des` feature, which switches aws-lc-sys to its full binding set for every crate of the workspace, and
/// has no RC2 at all; the RustCrypto `des`/`rc2` block ciphers with the `cbc` mode are small, pure Rust, and used for
/// nothing else.
fn legacy_cbc_decrypt<C>(cipher: C, iv: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>>
where
    C: cipher::BlockCipherDecrypt + cipher::BlockSizeUser<BlockSize = cipher::consts::U8>,
{
    use cipher::{BlockModeDecrypt, InnerIvInit};
    if data.is_empty() || !data.chunks_exact(8).remainder().is_empty() {
        return None;
    }
    let dec = cbc::Decryptor::<C>::inner_iv_slice_init(cipher, iv).ok()?;
    let mut buf = Zeroizing::new(data.to_vec());
    let len = dec.decrypt_padded::<cipher::block_padding::Pkcs7>(&mut buf).ok()?.len();
    buf.truncate(len);
    Some(buf)
}

fn tdes_decrypt(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use cipher::KeyInit;
    legacy_cbc_decrypt(des::TdesEde3::new_from_slice(key).ok()?, iv, data)
}

fn rc2_decrypt(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    legacy_cbc_decrypt(rc2::Rc2::new_with_eff_key_len(key, key.len() * 8), iv, data)
}

/// Decrypts `data` encrypted under the AlgorithmIdentifier `alg` with the empty password, trying the password
/// encodings in `passwords` (the one the MAC verified first).
fn decrypt(alg: Tlv<'_>, data: &[u8], passwords: &[&[u8]], depth: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut c = alg.expect(SEQUENCE)?.children(depth)?;
    let alg_oid = c.need()?.oid()?;
    let params = c.need()?;
    if alg_oid == oid::PBES2 {
        return decrypt_pbes2(params, data, depth + 1);
    }
    let (key_len, which) = if alg_oid == oid::PBE_SHA1_3DES {
        (24, 0)
    } else if alg_oid == oid::PBE_SHA1_RC2_128 {
        (16, 1)
    } else if alg_oid == oid::PBE_SHA1_RC2_40 {
        (5, 1)
    } else {
        return Err(Pkcs12Error::Unsupported(alg_oid.to_string()));
    };
    let mut p = params.expect(SEQUENCE)?.children(depth + 1)?;
    let salt = p.need()?.expect(OCTET_STRING)?.content;
    let iter = iterations(p.need()?.small_uint()?)?;
    for password in passwords {
        let key = pkcs12_kdf(Hash::Sha1, password, salt, 1, iter, key_len);
        let iv = pkcs12_kdf(Hash::Sha1, password, salt, 2, iter, 8);
        let plain = if which == 0 { tdes_decrypt(&key, &iv, data) } else { rc2_decrypt(&key, &iv, data) };
        if let Some(p) = plain {
            return Ok(p);
        }
    }
    Err(Pkcs12Error::WrongPassword)
}

fn decrypt_pbes2(params: Tlv<'_>, data: &[u8], depth: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut p = params.expect(SEQUENCE)?.children(depth)?;
    let mut kdf = p.need()?.expect(SEQUENCE)?.children(depth + 1)?;
    let kdf_oid = kdf.need()?.oid()?;
    if kdf_oid != oid::PBKDF2 {
        return Err(Pkcs12Error::Unsupported(kdf_oid.to_string()));
    }
    let mut kp = kdf.need()?.expect(SEQUENCE)?.children(depth + 2)?;
    let salt = kp.need()?.expect(OCTET_STRING)?.content;
    let iter = iterations(kp.need()?.small_uint()?)?;
    let mut prf = aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA1;
    let mut key_len = None;
    while let Some(t) = kp.next_tlv()? {
        match t.tag {
            INTEGER => key_len = Some(t.small_uint()?),
            SEQUENCE => {
                let prf_oid = t.children(depth + 3)?.need()?.oid()?;
                prf = if prf_oid == oid::HMAC_SHA1 {
                    aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA1
                } else if prf_oid == oid::HMAC_SHA256 {
                    aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256
                } else if prf_oid == oid::HMAC_SHA384 {
                    aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA384
                } else if prf_oid == oid::HMAC_SHA512 {
                    aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA512
                } else {
                    return Err(Pkcs12Error::Unsupported(prf_oid.to_string()));
                };
            }
            _ => return Err(Pkcs12Error::Malformed("unexpected field in PBKDF2 parameters")),
        }
    }
    let mut enc = p.need()?.expect(SEQUENCE)?.children(depth + 1)?;
    let enc_oid = enc.need()?.oid()?;
    let iv = enc.need()?.expect(OCTET_STRING)?.content;
    let len = if enc_oid == oid::AES128_CBC {
        16
    } else if enc_oid == oid::AES192_CBC {
        24
    } else if enc_oid == oid::AES256_CBC || enc_oid == oid::DES_EDE3_CBC {
        if enc_oid == oid::DES_EDE3_CBC { 24 } else { 32 }
    } else {
        return Err(Pkcs12Error::Unsupported(enc_oid.to_string()));
    };
    if key_len.is_some_and(|k| k != len as u64) {
        return Err(Pkcs12Error::Malformed("PBKDF2 key length does not match the cipher"));
    }
    // PBES2 passwords are the UTF-8 bytes: empty.
    let mut key = Zeroizing::new(vec![0u8; len]);
    aws_lc_rs::pbkdf2::derive(prf, iter, salt, b"", &mut key);
    let plain = if enc_oid == oid::DES_EDE3_CBC {
        tdes_decrypt(&key, iv, data)
    } else {
        aes_cbc_decrypt(&key, iv, data)
    };
    plain.ok_or(Pkcs12Error::WrongPassword)
}

/// Verifies MacData over `auth_safe`; returns the password encodings to try, the verified one first.
fn verify_mac(mac_data: Tlv<'_>, auth_safe: &[u8]) -> Result<Vec<&'static [u8]>> {
    let mut m = mac_data.expect(SEQUENCE)?.children(1)?;
    let mut digest_info = m.need()?.expect(SEQUENCE)?.children(2)?;
    let alg_oid = digest_info.need()?.expect(SEQUENCE)?.children(3)?.need()?.oid()?;
    let expected = digest_info.need()?.expect(OCTET_STRING)?.content;
    let salt = m.need()?.expect(OCTET_STRING)?.content;
    let iter = match m.next_tlv()? {
        Some(t) => iterations(t.small_uint()?)?,
        None => NonZeroU32::MIN,
    };
    let hash = if alg_oid == oid::SHA1 {
        Hash::Sha1
    } else if alg_oid == oid::SHA256 {
        Hash::Sha256
    } else if alg_oid == oid::SHA384 {
        Hash::Sha384
    } else if alg_oid == oid::SHA512 {
        Hash::Sha512
    } else {
        // PBMAC1 and others: the decryption step still tells a wrong password.
        return Ok(EMPTY_PASSWORDS.to_vec());
    };
    let out_len = hash.digest_alg().output_len();
    for (i, password) in EMPTY_PASSWORDS.iter().enumerate() {
        let key = pkcs12_kdf(hash, password, salt, 3, iter, out_len);
        let key = aws_lc_rs::hmac::Key::new(hash.hmac_alg(), &key);
        if aws_lc_rs::hmac::verify(&key, auth_safe, expected).is_ok() {
            let mut order = vec![EMPTY_PASSWORDS[i]];
            order.push(EMPTY_PASSWORDS[1 - i]);
            return Ok(order);
        }
    }
    Err(Pkcs12Error::WrongPassword)
}

// --- The structure ----------------------------------------------------------------------------------------------

/// Reads `pfx` (DER or BER) with the empty password.
pub fn decode_without_password(pfx: &[u8]) -> Result<Pkcs12Contents> {
    let mut top = parse_one(pfx)?.expect(SEQUENCE)?.children(0)?;
    if top.need()?.small_uint()? != 3 {
        return Err(Pkcs12Error::Malformed("PFX version must be 3"));
    }
    let mut auth_safe_ci = top.need()?.expect(SEQUENCE)?.children(1)?;
    if auth_safe_ci.need()?.oid()? != oid::DATA {
        return Err(Pkcs12Error::Unsupported("public-key integrity mode (signed PFX)".into()));
    }
    let auth_safe = auth_safe_ci.need()?.expect(CONTEXT_0_CONSTRUCTED)?.children(2)?.need()?.octets(3)?;
    let passwords = match top.next_tlv()? {
        Some(mac) => verify_mac(mac, &auth_safe)?,
        None => EMPTY_PASSWORDS.to_vec(),
    };

    let mut keys: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut certs: Vec<Vec<u8>> = Vec::new();
    let mut bags = 0usize;
    let mut contents = parse_one(&auth_safe)?.expect(SEQUENCE)?.children(1)?;
    while let Some(ci) = contents.next_tlv()? {
        let mut ci = ci.expect(SEQUENCE)?.children(2)?;
        let content_type = ci.need()?.oid()?;
        let explicit = ci.need()?.expect(CONTEXT_0_CONSTRUCTED)?.children(3)?.need()?;
        let safe_contents: Zeroizing<Vec<u8>> = if content_type == oid::DATA {
            Zeroizing::new(explicit.octets(4)?.into_owned())
        } else if content_type == oid::ENCRYPTED_DATA {
            let mut ed = explicit.expect(SEQUENCE)?.children(4)?;
            ed.need()?.small_uint()?; // version
            let mut eci = ed.need()?.expect(SEQUENCE)?.children(5)?;
            eci.need()?.oid()?; // contentType: data
            let alg = eci.need()?;
            let enc = eci.need()?;
            if enc.tag != CONTEXT_0_PRIMITIVE && enc.tag != CONTEXT_0_CONSTRUCTED {
                return Err(Pkcs12Error::Malformed("EncryptedContentInfo without encryptedContent"));
            }
            decrypt(alg, &enc.octets(6)?, &passwords, 6)?
        } else {
            return Err(Pkcs12Error::Unsupported(format!("content type {content_type}")));
        };
        let mut bag_list = parse_one(&safe_contents)?.expect(SEQUENCE)?.children(5)?;
        while let Some(bag) = bag_list.next_tlv()? {
            bags += 1;
            if bags > MAX_BAGS {
                return Err(Pkcs12Error::TooLarge("number of bags"));
            }
            let mut b = bag.expect(SEQUENCE)?.children(6)?;
            let bag_id = b.need()?.oid()?;
            let value = b.need()?.expect(CONTEXT_0_CONSTRUCTED)?.children(7)?.need()?;
            if bag_id == oid::KEY_BAG {
                keys.push(Zeroizing::new(raw_tlv_of(value)));
            } else if bag_id == oid::SHROUDED_KEY_BAG {
                let mut epki = value.expect(SEQUENCE)?.children(8)?;
                let alg = epki.need()?;
                let data = epki.need()?.octets(9)?;
                keys.push(decrypt(alg, &data, &passwords, 9)?);
            } else if bag_id == oid::CERT_BAG {
                let mut cb = value.expect(SEQUENCE)?.children(8)?;
                if cb.need()?.oid()? == oid::X509_CERTIFICATE {
                    let der = cb.need()?.expect(CONTEXT_0_CONSTRUCTED)?.children(9)?.need()?.octets(10)?;
                    certs.push(der.into_owned());
                }
            }
            // CRL, secret and nested bags carry nothing we write.
        }
    }
    let private_key_pkcs8 = match keys.into_iter().next() {
        Some(k) => {
            pkcs8::PrivateKeyInfoRef::from_der(&k).map_err(|_| Pkcs12Error::WrongPassword)?;
            Some(k)
        }
        None => None,
    };
    Ok(Pkcs12Contents { private_key_pkcs8, certificates: order_chain(certs) })
}

/// The full TLV (header and content) of a value read from a parent: the key bag holds PrivateKeyInfo directly.
fn raw_tlv_of(t: Tlv<'_>) -> Vec<u8> {
    let mut out = vec![t.tag];
    let len = t.content.len();
    if len < 0x80 {
        out.push(len.to_le_bytes()[0]);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
        out.push(0x80 | u8::try_from(bytes.len() - skip).unwrap_or(0x7f));
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(t.content);
    out
}

/// Orders certificates leaf -> root by subject/issuer names. The leaf is the first certificate that issued no other
/// one. Certificates that are not on the chain follow in their original order; unparsable ones stay where they are
/// in that tail.
pub fn order_chain(certs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    use der::Encode;
    let names: Vec<Option<(Vec<u8>, Vec<u8>)>> = certs
        .iter()
        .map(|c| {
            let cert = x509_cert::Certificate::from_der(c).ok()?;
            let tbs = cert.tbs_certificate();
            Some((tbs.subject().to_der().ok()?, tbs.issuer().to_der().ok()?))
        })
        .collect();
    let issued_other = |i: usize| {
        let Some((subject, _)) = &names[i] else { return false };
        names
            .iter()
            .enumerate()
            .any(|(j, n)| j != i && n.as_ref().is_some_and(|(s, issuer)| issuer == subject && s != subject))
    };
    // A self-signed root issued nothing else in an incomplete chain either: prefer a non-self-signed leaf.
    let self_signed = |i: usize| names[i].as_ref().is_some_and(|(s, iss)| s == iss);
    let Some(leaf) = (0..certs.len())
        .find(|&i| names[i].is_some() && !issued_other(i) && !self_signed(i))
        .or_else(|| (0..certs.len()).find(|&i| names[i].is_some() && !issued_other(i)))
    else {
        return certs;
    };
    let mut order = vec![leaf];
    let mut current = leaf;
    while let Some((subject, issuer)) = &names[current] {
        if subject == issuer {
            break; // self-signed root
        }
        match (0..certs.len())
            .find(|j| !order.contains(j) && names[*j].as_ref().is_some_and(|(s, _)| s == issuer))
        {
            Some(next) => {
                order.push(next);
                current = next;
            }
            None => break,
        }
    }
    let rest: Vec<usize> = (0..certs.len()).filter(|i| !order.contains(i)).collect();
    order.extend(rest);
    let mut slots: Vec<Option<Vec<u8>>> = certs.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_matches_rfc7292_test_vector() {
        // From the OpenSSL/BouncyCastle PKCS#12 KDF tests: password "smeg", salt 0A58CF64530D823F, 1 iteration,
        // ID 1, 24 bytes.
        let password: Vec<u8> = "smeg".encode_utf16().flat_map(|u| u.to_be_bytes()).chain([0, 0]).collect();
        let salt = [0x0a, 0x58, 0xcf, 0x64, 0x53, 0x0d, 0x82, 0x3f];
        let key = pkcs12_kdf(Hash::Sha1, &password, &salt, 1, NonZeroU32::MIN, 24);
        assert_eq!(
            key.as_slice(),
            [
                0x8a, 0xaa, 0xe6, 0x29, 0x7b, 0x6c, 0xb0, 0x46, 0x42, 0xab, 0x5b, 0x07, 0x78, 0x51, 0x28,
                0x4e, 0xb7, 0x12, 0x8f, 0x1a, 0x2a, 0x7f, 0xbc, 0xa3
            ]
        );
        let iv = pkcs12_kdf(Hash::Sha1, &password, &salt, 2, NonZeroU32::MIN, 8);
        assert_eq!(iv.as_slice(), [0x79, 0x99, 0x3d, 0xfe, 0x04, 0x8d, 0x3b, 0x76]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in
            [&b""[..], &[0x30, 0x80], &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], &[0x30, 0x03, 0x02, 0x01, 0x03]]
        {
            assert!(decode_without_password(input).is_err());
        }
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert!(decode_without_password(&deep).is_err());
    }
}
