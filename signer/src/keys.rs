//! Ed25519 signing keys and the certificates C2PA validators accept.
//!
//! `keygen` makes a self-signed root CA and a leaf ("claim signing") certificate under it.
//! The leaf is what signs manifests; the root is what verifiers add as a trust anchor.

use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::SigningKey;
use hallmark_watermark::WatermarkKey;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519,
};
use time::{Duration, OffsetDateTime};

use crate::fsutil::write_atomic;
use crate::{Home, SignerError};

/// C2PA claimSigning extended key usage (1.3.6.1.4.1.62558.2.1).
const C2PA_CLAIM_SIGNING_EKU: [u64; 9] = [1, 3, 6, 1, 4, 1, 62558, 2, 1];

const ROOT_CERT: &str = "root-ca.pem";
const ROOT_KEY: &str = "root-ca.key";
const SIGNER_CERT: &str = "signer.pem";
const SIGNER_KEY: &str = "signer.key";
/// The secret watermark key (hex of `WatermarkKey::to_bytes`). Never replaced once made:
/// every clip marked with it must stay detectable.
pub(crate) const WATERMARK_KEY: &str = "watermark.key";

/// Paths of the files `keygen` wrote.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub root_cert: PathBuf,
    pub root_key: PathBuf,
    pub signer_cert: PathBuf,
    pub signer_key: PathBuf,
}

impl KeyFiles {
    fn in_home(home: &Home) -> KeyFiles {
        let k = home.keys_dir();
        KeyFiles {
            root_cert: k.join(ROOT_CERT),
            root_key: k.join(ROOT_KEY),
            signer_cert: k.join(SIGNER_CERT),
            signer_key: k.join(SIGNER_KEY),
        }
    }

    fn all(&self) -> [&PathBuf; 4] {
        [
            &self.root_cert,
            &self.root_key,
            &self.signer_cert,
            &self.signer_key,
        ]
    }
}

/// The keys that seal: the Ed25519 key and certificate that sign manifests, and the secret
/// watermark key. Debug never shows either key.
pub struct SigningIdentity {
    key: SigningKey,
    cert_pem: String,
    watermark: WatermarkKey,
    /// Where sealed clips are recorded (durable credentials); `None`: nowhere.
    store: Option<PathBuf>,
    /// RFC 3161 time-stamp authority asked for a trusted signing time; `None`: none.
    tsa_url: Option<String>,
    /// Watermark keys whose marks a `--not-ai` seal looks for in its input (by default the
    /// identity's own).
    known_marks: Vec<WatermarkKey>,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// PEM of the leaf certificate only: C2PA rejects a chain that includes the root.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn watermark_key(&self) -> &WatermarkKey {
        &self.watermark
    }

    /// The manifest store every clip this identity seals is recorded in (by default the
    /// home's), so that its manifest can be recovered from the watermark after a platform
    /// strips it.
    pub fn store(&self) -> Option<&Path> {
        self.store.as_deref()
    }

    /// Records into `store` instead (`None`: do not record).
    pub fn with_store(mut self, store: Option<PathBuf>) -> SigningIdentity {
        self.store = store;
        self
    }

    /// Watermark keys whose marks sealing an input as not AI-generated looks for: a mark
    /// made with one of them that declares AI makes the seal refuse.
    pub fn known_marks(&self) -> &[WatermarkKey] {
        &self.known_marks
    }

    /// Looks for marks of `keys` (e.g. `Home::watermark_keys`: this home's and those its
    /// config lists) instead of the identity's own key alone.
    pub fn with_known_marks(mut self, keys: Vec<WatermarkKey>) -> SigningIdentity {
        if !keys.is_empty() {
            self.known_marks = keys;
        }
        self
    }

    /// The RFC 3161 time-stamp authority every seal asks for a trusted signing time.
    pub fn tsa_url(&self) -> Option<&str> {
        self.tsa_url.as_deref()
    }

    /// Asks `tsa_url` (an `http://` or `https://` URL) for a trusted time stamp of every
    /// signature (`None`: none). Sealing fails, writing nothing, when it cannot get one.
    pub fn with_tsa(mut self, tsa_url: Option<String>) -> Result<SigningIdentity, SignerError> {
        if let Some(url) = &tsa_url {
            crate::seal::tsa_address(url)?;
        }
        self.tsa_url = tsa_url;
        Ok(self)
    }

    pub(crate) fn c2pa_signer(&self) -> TimedSigner {
        use ed25519_dalek::Signer as _;
        let key = self.key.clone();
        let signer = c2pa::CallbackSigner::new(
            move |_ctx, data: &[u8]| Ok(key.sign(data).to_bytes().to_vec()),
            c2pa::SigningAlg::Ed25519,
            self.cert_pem.as_bytes().to_vec(),
        );
        TimedSigner(match &self.tsa_url {
            Some(url) => {
                let mut signer = signer.set_tsa_url(url.clone());
                // The time-stamp token carries the authority's signature and certificates.
                signer.reserve_size += TIMESTAMP_RESERVE;
                signer
            }
            None => signer,
        })
    }
}

/// How long signing waits for the time-stamp authority's answer.
pub(crate) const TSA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The Ed25519 `CallbackSigner`, whose time-stamp request (the SDK's own,
/// `default_rfc3161_request`) is bounded by [`TSA_TIMEOUT`] and never skipped: the SDK's
/// default gives up silently (no time stamp) when it cannot build the request, and its HTTP
/// agent has no timeout.
pub(crate) struct TimedSigner(c2pa::CallbackSigner);

impl c2pa::Signer for TimedSigner {
    fn sign(&self, data: &[u8]) -> c2pa::Result<Vec<u8>> {
        c2pa::Signer::sign(&self.0, data)
    }

    fn alg(&self) -> c2pa::SigningAlg {
        c2pa::Signer::alg(&self.0)
    }

    fn certs(&self) -> c2pa::Result<Vec<Vec<u8>>> {
        c2pa::Signer::certs(&self.0)
    }

    fn reserve_size(&self) -> usize {
        c2pa::Signer::reserve_size(&self.0)
    }

    fn time_authority_url(&self) -> Option<String> {
        c2pa::Signer::time_authority_url(&self.0)
    }

    fn send_timestamp_request(&self, message: &[u8]) -> Option<c2pa::Result<Vec<u8>>> {
        use c2pa::crypto::time_stamp::{default_rfc3161_request, TimeStampError};
        let url = self.time_authority_url()?;
        let body = match self.timestamp_request_body(message) {
            Ok(body) => body,
            Err(e) => return Some(Err(e)),
        };
        let message = message.to_vec();
        let (answer, answered) = std::sync::mpsc::channel();
        // On its own thread so that an authority that never answers cannot hold the seal;
        // the thread is left to the process's exit then.
        std::thread::spawn(move || {
            let context = c2pa::Context::new();
            let _ = answer.send(default_rfc3161_request(
                &url, None, &body, &message, &context,
            ));
        });
        Some(match answered.recv_timeout(TSA_TIMEOUT) {
            Ok(reply) => reply.map_err(c2pa::Error::from),
            Err(_) => Err(c2pa::Error::from(TimeStampError::HttpConnectionError(
                format!("no answer within {} s", TSA_TIMEOUT.as_secs()),
            ))),
        })
    }
}

/// Room in the signature box for an RFC 3161 time-stamp token (its CMS signature and the
/// authority's certificate chain: typically 2 to 6 KB).
const TIMESTAMP_RESERVE: usize = 16 * 1024;

/// What `ensure_identity` did.
#[derive(Debug)]
pub struct Identity {
    pub signing: SigningIdentity,
    /// Keys were created just now (the caller should say they are self-signed).
    pub created: Option<KeyFiles>,
}

/// Creates a root CA and a signing certificate for `org` in the home dir and adds the root
/// to the config's trust anchors. Refuses to replace existing keys unless `force`.
pub fn keygen(home: &Home, org: &str, force: bool) -> Result<KeyFiles, SignerError> {
    let files = KeyFiles::in_home(home);
    if !force {
        if let Some(existing) = files.all().into_iter().find(|p| p.exists()) {
            return Err(SignerError::KeysExist(existing.clone()));
        }
    }
    let org = org.trim();
    if org.is_empty() {
        return Err(SignerError::Keys(
            "the organisation name must not be empty".into(),
        ));
    }
    home.ensure()?;

    let (root_params, root_key, root_pem) = make_root(org)?;
    let (signer_pem, signer_key) = make_signer(org, &root_params, &root_key)?;

    // Keys first, mode 0600 from creation; certificates after.
    write_atomic(&files.root_key, root_key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(
        &files.signer_key,
        signer_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_atomic(&files.root_cert, root_pem.as_bytes(), 0o644)?;
    write_atomic(&files.signer_cert, signer_pem.as_bytes(), 0o644)?;

    ensure_watermark_key(home)?;
    let mut config = home.config()?;
    let anchor = PathBuf::from("keys").join(ROOT_CERT);
    if !config.trust_anchors.contains(&anchor) {
        config.trust_anchors.push(anchor);
        home.save_config(&config)?;
    }
    Ok(files)
}

/// Loads the signing identity, creating keys (org "hallmark user") on first use.
pub fn ensure_identity(home: &Home) -> Result<Identity, SignerError> {
    let files = KeyFiles::in_home(home);
    if !files.signer_key.exists() && !files.signer_cert.exists() {
        let created = keygen(home, "hallmark user", false)?;
        let signing = load_identity(home)?;
        return Ok(Identity {
            signing,
            created: Some(created),
        });
    }
    Ok(Identity {
        signing: load_identity(home)?,
        created: None,
    })
}

/// Loads the signing key and certificate from the home dir.
pub fn load_identity(home: &Home) -> Result<SigningIdentity, SignerError> {
    let files = KeyFiles::in_home(home);
    let key_pem =
        fs::read_to_string(&files.signer_key).map_err(|e| SignerError::io(&files.signer_key, e))?;
    let cert_pem = fs::read_to_string(&files.signer_cert)
        .map_err(|e| SignerError::io(&files.signer_cert, e))?;
    let key = SigningKey::from_pkcs8_pem(&key_pem).map_err(|_| {
        // The parse error may quote key material; say only which file is wrong.
        SignerError::Keys(format!(
            "{} is not an Ed25519 PKCS#8 private key",
            files.signer_key.display()
        ))
    })?;
    let watermark = ensure_watermark_key(home)?;
    Ok(SigningIdentity {
        key,
        cert_pem,
        known_marks: vec![watermark.clone()],
        watermark,
        store: Some(home.store_path()),
        tsa_url: None,
    })
}

/// The home's watermark key, made on first use (homes from before the watermark have none).
pub fn ensure_watermark_key(home: &Home) -> Result<WatermarkKey, SignerError> {
    let path = home.keys_dir().join(WATERMARK_KEY);
    match fs::read_to_string(&path) {
        Ok(text) => parse_watermark_key(&path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            home.ensure()?;
            let key = WatermarkKey::generate(rand::random())
                .map_err(|e| SignerError::Keys(format!("cannot make a watermark key: {e}")))?;
            let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            write_atomic(&path, format!("{hex}\n").as_bytes(), 0o600)?;
            Ok(key)
        }
        Err(e) => Err(SignerError::io(&path, e)),
    }
}

/// Reads a watermark key file (hex, as `keygen` writes it).
pub(crate) fn read_watermark_key(path: &Path) -> Result<WatermarkKey, SignerError> {
    let text = fs::read_to_string(path).map_err(|e| SignerError::io(path, e))?;
    parse_watermark_key(path, &text)
}

fn parse_watermark_key(path: &Path, text: &str) -> Result<WatermarkKey, SignerError> {
    let invalid = || {
        SignerError::Keys(format!(
            "{} is not a hallmark watermark key",
            path.display()
        ))
    };
    let bytes = decode_hex(text.trim()).ok_or_else(invalid)?;
    WatermarkKey::from_bytes(&bytes).map_err(|_| invalid())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn validity(params: &mut CertificateParams, years: i64) {
    let now = OffsetDateTime::now_utc();
    // A little back-dating absorbs clock skew between signer and verifier.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365 * years);
}

fn random_serial() -> rcgen::SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and no leading zero byte
    rcgen::SerialNumber::from_slice(&bytes)
}

fn make_root(org: &str) -> Result<(CertificateParams, KeyPair, String), SignerError> {
    let key = KeyPair::generate_for(&PKCS_ED25519).map_err(cert_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{org} hallmark root CA"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, org);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial());
    validity(&mut params, 10);
    let cert = params.self_signed(&key).map_err(cert_err)?;
    Ok((params, key, cert.pem()))
}

fn make_signer(
    org: &str,
    root_params: &CertificateParams,
    root_key: &KeyPair,
) -> Result<(String, KeyPair), SignerError> {
    let key = KeyPair::generate_for(&PKCS_ED25519).map_err(cert_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{org} hallmark signer"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, org);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(
        C2PA_CLAIM_SIGNING_EKU.to_vec(),
    )];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    validity(&mut params, 2);
    let issuer = Issuer::from_params(root_params, root_key);
    let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
    Ok((cert.pem(), key))
}

fn cert_err(e: rcgen::Error) -> SignerError {
    SignerError::Keys(format!("certificate generation failed: {e}"))
}

/// The organisation named in this home's signing certificate (`keygen --org`), which holds
/// its watermark key too; `None` without a readable certificate.
pub(crate) fn own_organisation(home: &Home) -> Option<String> {
    let pem = std::fs::read(home.keys_dir().join(SIGNER_CERT)).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    let org = cert.subject().iter_organization().next()?.as_str().ok()?;
    Some(org.to_owned())
}
