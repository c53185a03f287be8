//! Files signed with bad credentials, made here with the C2PA SDK directly (certificates from
//! rcgen or the `openssl` CLI), and the verdict and credential family `verify --json` gives
//! each: `credential-problem` (`invalid-credential`, `expired`, `revoked`,
//! `unsupported-algorithm`), `valid-untrusted` (`untrusted`), or `tampered`.
//!
//! The SDK refuses to sign with a certificate that fails its profile check (expired, no
//! claimSigning EKU, a CA), so these files are signed through a `Signer` that builds the
//! COSE signature itself (`direct_cose_handling`, `c2pa::crypto::cose::sign`): exactly the
//! bytes a careless or hostile signer could produce. Each test prints the SDK's raw failure
//! codes (`c2pa.failures`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use c2pa::crypto::cose::TimeStampStorage;
use c2pa::crypto::raw_signature::{
    signer_from_cert_chain_and_private_key, RawSigner, RawSignerError,
};
use c2pa::crypto::time_stamp::TimeStampProvider;
use c2pa::SigningAlg;
use common::{scratch, strings, verify_json};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};

/// C2PA claimSigning extended key usage (1.3.6.1.4.1.62558.2.1).
const CLAIM_SIGNING: [u64; 9] = [1, 3, 6, 1, 4, 1, 62558, 2, 1];

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Credential Tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = OffsetDateTime::now_utc() - Duration::days(5 * 365);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(10 * 365);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

/// The CA verifiers are told to trust (`--trust-anchors`).
fn trusted_ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| ca("Credential Tests trusted root"))
}

fn trusted_root_pem() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let p = scratch().join("trusted-root.pem");
        std::fs::write(&p, &trusted_ca().pem).unwrap();
        p
    })
    .clone()
}

/// How a leaf certificate departs from a good C2PA signing certificate.
#[derive(Clone, Copy, PartialEq)]
enum Leaf {
    Good,
    /// serverAuth instead of claimSigning.
    UnrelatedEku,
    /// No extended key usage at all.
    NoEku,
    /// basicConstraints CA:TRUE.
    IsCa,
    /// Validity ended a year ago.
    Expired,
}

/// (certificate PEM, private key PKCS#8 PEM) of a leaf issued by `issuer`.
fn leaf(issuer: &Ca, kind: Leaf) -> (String, String) {
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "credential test signer");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Credential Tests");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(CLAIM_SIGNING.to_vec())];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
    match kind {
        Leaf::Good => {}
        Leaf::UnrelatedEku => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        Leaf::NoEku => params.extended_key_usages = Vec::new(),
        Leaf::IsCa => {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
            ];
        }
        Leaf::Expired => {
            params.not_before = now - Duration::days(3 * 365);
            params.not_after = now - Duration::days(365);
        }
    }
    let issuer = Issuer::from_params(&issuer.params, &issuer.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

// ---------------------------------------------------------------------------------------
// Signing around the SDK's own certificate check
// ---------------------------------------------------------------------------------------

/// The SDK's Ed25519 raw signer, with an OCSP response to staple and an optional change to
/// the COSE algorithm it declares.
struct Raw {
    inner: Box<dyn RawSigner + Send + Sync>,
    ocsp: Option<Vec<u8>>,
}

impl TimeStampProvider for Raw {}

impl RawSigner for Raw {
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, RawSignerError> {
        self.inner.sign(data)
    }
    fn alg(&self) -> SigningAlg {
        self.inner.alg()
    }
    fn cert_chain(&self) -> Result<Vec<Vec<u8>>, RawSignerError> {
        self.inner.cert_chain()
    }
    fn reserve_size(&self) -> usize {
        self.inner.reserve_size()
    }
    fn ocsp_response(&self) -> Option<Vec<u8>> {
        self.ocsp.clone()
    }
}

/// A `c2pa::Signer` that builds the COSE_Sign1 itself, so that the SDK does not check the
/// certificate before signing.
struct DirectSigner {
    raw: Raw,
    /// Replace the COSE `alg` (EdDSA, -8) in the protected header with this one-byte
    /// negative CBOR integer (e.g. 0x25 = -6, "direct": no signature algorithm).
    alg_byte: Option<u8>,
}

const RESERVE: usize = 20_000;

/// Length of the CBOR byte string at the start of `bytes`, header included.
fn cbor_bstr_len(bytes: &[u8]) -> usize {
    match bytes[0] {
        b @ 0x40..=0x57 => 1 + usize::from(b - 0x40),
        0x58 => 2 + usize::from(bytes[1]),
        0x59 => 3 + usize::from(u16::from_be_bytes([bytes[1], bytes[2]])),
        0x5a => 5 + u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize,
        b => panic!("not a CBOR byte string: {b:#x}"),
    }
}

/// CBOR header of a byte string of `len` bytes.
fn cbor_bstr_header(len: usize) -> Vec<u8> {
    match len {
        0..=23 => vec![0x40 + len as u8],
        24..=0xff => vec![0x58, len as u8],
        0x100..=0xffff => [vec![0x59], (len as u16).to_be_bytes().to_vec()].concat(),
        _ => [vec![0x5a], (len as u32).to_be_bytes().to_vec()].concat(),
    }
}

impl c2pa::Signer for DirectSigner {
    fn sign(&self, claim: &[u8]) -> c2pa::Result<Vec<u8>> {
        let mut cose = c2pa::crypto::cose::sign(
            &self.raw,
            claim,
            Some(RESERVE),
            TimeStampStorage::V2_sigTst2_CTT,
        )?;
        if let Some(byte) = self.alg_byte {
            // d2 84 (tag 18, array of 4), then the protected header bstr holding a map whose
            // entry 1 (alg) is -8 (0x27).
            let at = cose[..16]
                .windows(2)
                .position(|w| w == [0x01, 0x27])
                .expect("alg -8 in the protected header");
            cose[at + 1] = byte;
            // Sign again over the changed header, so that the algorithm is the only defect:
            // Sig_structure = ["Signature1", protected, h'' (external aad), payload].
            let protected = &cose[2..2 + cbor_bstr_len(&cose[2..])];
            let mut tbs = vec![0x84, 0x6a];
            tbs.extend_from_slice(b"Signature1");
            tbs.extend_from_slice(protected);
            tbs.push(0x40);
            tbs.extend_from_slice(&cbor_bstr_header(claim.len()));
            tbs.extend_from_slice(claim);
            let signature = self.raw.sign(&tbs)?;
            let sig_at = cose
                .windows(3)
                .rposition(|w| w == [0xf6, 0x58, 0x40])
                .expect("the COSE signature value")
                + 3;
            cose[sig_at..sig_at + 64].copy_from_slice(&signature);
        }
        Ok(cose)
    }
    fn alg(&self) -> SigningAlg {
        SigningAlg::Ed25519
    }
    fn certs(&self) -> c2pa::Result<Vec<Vec<u8>>> {
        Ok(self.raw.cert_chain()?)
    }
    fn reserve_size(&self) -> usize {
        RESERVE
    }
    fn direct_cose_handling(&self) -> bool {
        true
    }
}

fn direct_signer(chain_pem: &str, key_pem: &str, alg: SigningAlg) -> DirectSigner {
    let inner =
        signer_from_cert_chain_and_private_key(chain_pem.as_bytes(), key_pem.as_bytes(), alg, None)
            .unwrap();
    DirectSigner {
        raw: Raw { inner, ocsp: None },
        alg_byte: None,
    }
}

/// 0.5 s of a 160x120 test pattern (H.264, MP4): the asset every credential is tried on.
fn asset() -> PathBuf {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        let out = scratch().join("asset.mp4");
        common::ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10:duration=0.5",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            out.to_str().unwrap(),
        ]);
        out
    })
    .clone()
}

/// Signs `asset()` into `scratch()/name` with `signer`, a manifest like hallmark's.
fn sign_asset(signer: &dyn c2pa::Signer, name: &str) -> PathBuf {
    let context = c2pa::Context::new()
        .with_settings(json!({"verify": {"verify_after_sign": false}}))
        .unwrap();
    let mut builder = c2pa::Builder::from_context(context)
        .with_definition(json!({
            "title": name,
            "claim_generator_info": [{"name": "hallmark-credential-tests", "version": "1"}],
            "assertions": [{"label": "org.hallmark.seal", "data": {"version": 1, "ai_generated": true}}],
        }))
        .unwrap();
    builder
        .add_action(json!({
            "action": "c2pa.created",
            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        }))
        .unwrap();
    let out = scratch().join(name);
    let mut src = std::fs::File::open(asset()).unwrap();
    let mut dst = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&out)
        .unwrap();
    builder
        .sign(signer, "video/mp4", &mut src, &mut dst)
        .unwrap_or_else(|e| panic!("signing {name}: {e}"));
    out
}

fn signed_with(kind: Leaf, name: &str) -> PathBuf {
    let (cert, key) = leaf(trusted_ca(), kind);
    sign_asset(&direct_signer(&cert, &key, SigningAlg::Ed25519), name)
}

/// `verify --json` in an empty home, trusting `anchors`; prints the raw failure codes.
fn verify(family: &str, file: &Path, anchors: &[&Path]) -> serde_json::Value {
    let home = common::Home::empty();
    let mut extra = Vec::new();
    for a in anchors {
        extra.push("--trust-anchors");
        extra.push(a.to_str().unwrap());
    }
    let (_, report) = verify_json(home.path(), file, &extra);
    eprintln!(
        "FAMILY {family}: c2pa.failures = {:?}, c2pa.validation_state = {}, verdict = {}, credential_problem = {}",
        strings(&report["c2pa"]["failures"]),
        report["c2pa"]["validation_state"],
        report["verdict"],
        report["credential_problem"],
    );
    report
}

fn assert_family(report: &serde_json::Value, verdict: &str, problem: Option<&str>) {
    assert_eq!(report["verdict"], verdict, "{report:#}");
    match problem {
        Some(p) => assert_eq!(report["credential_problem"], p, "{report:#}"),
        None => assert!(report["credential_problem"].is_null(), "{report:#}"),
    }
}

fn has_failure(report: &serde_json::Value, code: &str) -> bool {
    strings(&report["c2pa"]["failures"])
        .iter()
        .any(|f| f == code)
}

// ---------------------------------------------------------------------------------------
// The families
// ---------------------------------------------------------------------------------------

#[test]
fn control_good_credential_signed_the_same_way_is_verified() {
    // The harness itself (direct COSE, the same asset) gives a clean result: what the other
    // tests see comes from the credential alone.
    let file = signed_with(Leaf::Good, "good.mp4");
    let report = verify("good", &file, &[&trusted_root_pem()]);
    assert!(
        strings(&report["c2pa"]["failures"]).is_empty(),
        "{report:#}"
    );
    assert_family(&report, "verified", None);
}

#[test]
fn leaf_with_an_unrelated_eku_is_an_invalid_credential() {
    let file = signed_with(Leaf::UnrelatedEku, "unrelated-eku.mp4");
    let report = verify("unrelated EKU (serverAuth)", &file, &[&trusted_root_pem()]);
    assert!(
        has_failure(&report, "signingCredential.invalid"),
        "{report:#}"
    );
    assert_family(&report, "credential-problem", Some("invalid-credential"));
}

#[test]
fn leaf_without_any_eku_is_an_invalid_credential() {
    let file = signed_with(Leaf::NoEku, "no-eku.mp4");
    let report = verify("no EKU", &file, &[&trusted_root_pem()]);
    assert!(
        has_failure(&report, "signingCredential.invalid"),
        "{report:#}"
    );
    assert_family(&report, "credential-problem", Some("invalid-credential"));
}

#[test]
fn leaf_that_is_a_ca_is_an_invalid_credential() {
    let file = signed_with(Leaf::IsCa, "leaf-is-ca.mp4");
    let report = verify("leaf is a CA", &file, &[&trusted_root_pem()]);
    assert!(
        has_failure(&report, "signingCredential.invalid"),
        "{report:#}"
    );
    assert_family(&report, "credential-problem", Some("invalid-credential"));
}

#[test]
fn expired_leaf_without_time_stamp_is_an_expired_credential() {
    let file = signed_with(Leaf::Expired, "expired.mp4");
    let report = verify("expired leaf, no time stamp", &file, &[&trusted_root_pem()]);
    assert!(
        has_failure(&report, "signingCredential.expired"),
        "{report:#}"
    );
    assert_family(&report, "credential-problem", Some("expired"));
}

#[test]
fn signer_outside_the_trust_anchors_is_valid_untrusted() {
    let stranger = ca("Credential Tests stranger root");
    let (cert, key) = leaf(&stranger, Leaf::Good);
    let file = sign_asset(
        &direct_signer(&cert, &key, SigningAlg::Ed25519),
        "untrusted.mp4",
    );
    // Trusting another root only: the stranger's is not among the anchors.
    let report = verify("untrusted signer", &file, &[&trusted_root_pem()]);
    assert_eq!(
        strings(&report["c2pa"]["failures"]),
        ["signingCredential.untrusted"],
        "{report:#}"
    );
    assert_family(&report, "valid-untrusted", Some("untrusted"));
}

#[test]
fn content_changed_after_signing_is_tampered() {
    let file = signed_with(Leaf::Good, "content-changed-src.mp4");
    let changed = common::copy_with_flipped_media_byte(&file, "content-changed.mp4");
    let report = verify("content changed", &changed, &[&trusted_root_pem()]);
    assert!(
        has_failure(&report, "assertion.bmffHash.mismatch"),
        "{report:#}"
    );
    assert_family(&report, "tampered", None);
}

/// Byte range of the `cbor` box that follows the JUMBF description labelled `label`.
fn jumbf_cbor_box(bytes: &[u8], label: &[u8]) -> std::ops::Range<usize> {
    let mut needle = label.to_vec();
    needle.push(0);
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("no {} box", String::from_utf8_lossy(label)));
    let cbor = at
        + bytes[at..]
            .windows(4)
            .position(|w| w == b"cbor")
            .expect("its cbor box");
    let size = u32::from_be_bytes(bytes[cbor - 4..cbor].try_into().unwrap()) as usize;
    cbor + 4..cbor - 4 + size
}

#[test]
fn manifest_signature_changed_after_signing_is_tampered() {
    let file = signed_with(Leaf::Good, "signature-changed-src.mp4");
    let mut bytes = std::fs::read(&file).unwrap();
    let sig_box = jumbf_cbor_box(&bytes, b"c2pa.signature");
    // The Ed25519 signature: a 64-byte bstr (58 40) after the nil payload (f6).
    let at = sig_box.start
        + bytes[sig_box.clone()]
            .windows(3)
            .rposition(|w| w == [0xf6, 0x58, 0x40])
            .expect("the COSE signature value");
    bytes[at + 3 + 32] ^= 0x01;
    let changed = scratch().join("signature-changed.mp4");
    std::fs::write(&changed, bytes).unwrap();
    let report = verify("signature bytes changed", &changed, &[&trusted_root_pem()]);
    assert!(
        has_failure(&report, "claimSignature.mismatch"),
        "{report:#}"
    );
    assert_family(&report, "tampered", None);
}

#[test]
fn claim_changed_after_signing_is_tampered() {
    let file = signed_with(Leaf::Good, "claim-changed-src.mp4");
    let mut bytes = std::fs::read(&file).unwrap();
    // The claim generator's name inside the signed claim: same length, other letters.
    let claim = jumbf_cbor_box(&bytes, b"c2pa.claim.v2");
    let name = b"hallmark-credential-tests";
    let at = claim.start
        + bytes[claim.clone()]
            .windows(name.len())
            .position(|w| w == name)
            .expect("the claim generator in the claim");
    bytes[at] = b'H';
    let changed = scratch().join("claim-changed.mp4");
    std::fs::write(&changed, bytes).unwrap();
    let report = verify("claim bytes changed", &changed, &[&trusted_root_pem()]);
    assert!(
        has_failure(&report, "claimSignature.mismatch"),
        "{report:#}"
    );
    assert_family(&report, "tampered", None);
}

#[test]
fn unsupported_signature_algorithm_is_a_credential_problem() {
    let (cert, key) = leaf(trusted_ca(), Leaf::Good);
    let mut signer = direct_signer(&cert, &key, SigningAlg::Ed25519);
    signer.alg_byte = Some(0x25); // COSE alg -6 ("direct"): no signature algorithm
    let file = sign_asset(&signer, "unsupported-alg.mp4");
    let report = verify("unsupported algorithm", &file, &[&trusted_root_pem()]);
    // The SDK cannot check a signature made with an algorithm it does not know, so it also
    // reports claimSignature.mismatch (Claim::verify_internal logs it for any error of the
    // COSE verification), although this signature is right for the declared header.
    assert!(has_failure(&report, "algorithm.unsupported"), "{report:#}");
    assert_family(&report, "credential-problem", Some("unsupported-algorithm"));
}

// ---------------------------------------------------------------------------------------
// Revocation: a stapled OCSP response (checked offline; the verifier never fetches)
// ---------------------------------------------------------------------------------------

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl CLI (installed by scripts/setup)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OCSP response for leaf.pem from the CA database line `index`, signed by the
/// responder; checked to say `status`.
fn ocsp_response(d: &Path, index: &str, status: &str) -> Vec<u8> {
    std::fs::write(d.join("index.txt"), index).unwrap();
    openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "root.pem",
            "-cert",
            "leaf.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
    );
    let out = format!("resp-{status}.der");
    openssl(
        d,
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            "responder.pem",
            "-rkey",
            "responder.key",
            "-CA",
            "root.pem",
            "-reqin",
            "req.der",
            "-respout",
            &out,
            "-ndays",
            "30",
        ],
    );
    let text = Command::new("openssl")
        .current_dir(d)
        .args(["ocsp", "-respin", &out, "-resp_text", "-noverify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("Cert Status: {status}")),
        "the OCSP response does not say {status}: {text}"
    );
    std::fs::read(d.join(out)).unwrap()
}

#[test]
fn revoked_leaf_with_a_stapled_ocsp_response_is_a_revoked_credential() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("ext.cnf"),
        "[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=1.3.6.1.4.1.62558.2.1\nsubjectKeyIdentifier=hash\n\
         authorityKeyIdentifier=keyid\n\
         [responder]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=critical,OCSPSigning\nsubjectKeyIdentifier=hash\n\
         authorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "3650",
            "-sha256",
            "-subj",
            "/CN=Revocation Test Root/O=Credential Tests",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(d, &["genpkey", "-algorithm", "ed25519", "-out", "leaf.key"]);
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=revoked signer/O=Credential Tests",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            "4242",
            "-out",
            "leaf.pem",
            "-days",
            "365",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "leaf",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "responder.key",
            "-out",
            "responder.csr",
            "-subj",
            "/CN=Revocation Test OCSP/O=Credential Tests",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "responder.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            "4343",
            "-out",
            "responder.pem",
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "responder",
        ],
    );
    // The CA's database: the leaf (serial 4242 = 0x1092) revoked a day ago, or valid.
    let revoked_at = OffsetDateTime::now_utc() - Duration::days(1);
    let stamp = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        revoked_at.year() % 100,
        u8::from(revoked_at.month()),
        revoked_at.day(),
        revoked_at.hour(),
        revoked_at.minute(),
        revoked_at.second()
    );
    let subject = "/CN=revoked signer/O=Credential Tests";
    let ocsp = ocsp_response(
        d,
        &format!("R\t351231235959Z\t{stamp},keyCompromise\t1092\tunknown\t{subject}\n"),
        "revoked",
    );
    let ocsp_good = ocsp_response(
        d,
        &format!("V\t351231235959Z\t\t1092\tunknown\t{subject}\n"),
        "good",
    );

    // x5chain: leaf and its issuer (the OCSP certId names the issuer).
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(d.join("leaf.pem")).unwrap(),
        std::fs::read_to_string(d.join("root.pem")).unwrap()
    );
    let key = std::fs::read_to_string(d.join("leaf.key")).unwrap();
    let mut signer = direct_signer(&chain, &key, SigningAlg::Ed25519);
    signer.raw.ocsp = Some(ocsp);
    let file = sign_asset(&signer, "revoked.mp4");
    let root = d.join("root.pem");

    // Controls: the same chain with nothing stapled, and with a "good" response from the
    // same responder, verifies: what fails below is the revocation.
    let unstapled = direct_signer(&chain, &key, SigningAlg::Ed25519);
    let control = sign_asset(&unstapled, "revoked-unstapled.mp4");
    let control = verify("same leaf, nothing stapled", &control, &[&root]);
    assert_family(&control, "verified", None);
    let mut good = direct_signer(&chain, &key, SigningAlg::Ed25519);
    good.raw.ocsp = Some(ocsp_good);
    let control = sign_asset(&good, "revoked-stapled-good.mp4");
    let control = verify("same leaf, stapled OCSP good", &control, &[&root]);
    assert_family(&control, "verified", None);

    // c2pa 0.90.22 checks the stapled response offline, but a revoked status gives no
    // failure code: check_ocsp_status returns an error and the Reader fails
    // (c2pa::Error::CertificateTrustError(CertificateNotTrusted), "the certificate is not
    // trusted"); signingCredential.revoked only goes to its internal log.
    let report = verify("revoked (stapled OCSP)", &file, &[&root]);
    eprintln!("FAMILY revoked (stapled OCSP): error = {}", report["error"]);
    assert_family(&report, "credential-problem", Some("revoked"));
}
