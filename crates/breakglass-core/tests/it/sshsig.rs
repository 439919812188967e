//! SSH signature verification against the real OpenSSH: keys made and
//! challenges signed by `ssh-keygen`, and every signature we accept also
//! accepted by `ssh-keygen -Y verify`. Security-key (`sk-`) signatures, which
//! need FIDO hardware to make, are built here by hand from `PROTOCOL.u2f` and
//! `PROTOCOL.sshsig`, and checked against `ssh-keygen -Y verify` as well.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use breakglass_core::sshsig::{self, LOGIN_NAMESPACE as NS, SK_USER_PRESENT, SK_USER_VERIFIED, SshSigError, Verified};
use breakglass_testkit::ssh::{SshKey, check, keygen_at, ssh_keygen, wire_strings as strings};
// One trait for every signer below (ed25519-dalek, ssh-key's ECDSA, rsa):
// they all implement the `signature` crate's `Signer`.
use rsa::signature::{SignatureEncoding as _, Signer as _};
use sha2::{Digest as _, Sha256, Sha512};
use ssh_key::{HashAlg, PrivateKey, PublicKey};
use tempfile::TempDir;

const CHALLENGE: &[u8] = b"bg-login-challenge:6f1c0a5e2b7d4c9e8a3f1b2d0c4e6a8f";

struct Key {
    path: PathBuf,
    /// The `.pub` line, as a principals file would hold it.
    line: String,
    public: PublicKey,
}

/// The testkit's key `dir/name` of the type `args` ask for, parsed.
fn keygen(dir: &Path, name: &str, args: &[&str]) -> Key {
    let SshKey { private: path, line } = keygen_at(&dir.join(name), name, args);
    let public = sshsig::parse_public_key(&line).unwrap_or_else(|e| panic!("{name}: {e}"));
    Key { path, line, public }
}

/// `ssh-keygen -Y sign` with `key` over `message`: the armored signature.
fn sign(key: &Key, namespace: &str, message: &[u8]) -> String {
    breakglass_testkit::ssh::sign(&key.path, namespace, message)
}

/// Whether `ssh-keygen -Y verify` accepts `armored` over `message` in
/// `namespace` from the key on `key_line`.
fn openssh_accepts(key_line: &str, namespace: &str, message: &[u8], armored: &str) -> bool {
    let dir = TempDir::new().unwrap();
    let (signers, sig, msg) = (dir.path().join("allowed_signers"), dir.path().join("sig"), dir.path().join("msg"));
    fs::write(&signers, format!("login@breakglass {}\n", key_line.trim())).unwrap();
    fs::write(&sig, armored).unwrap();
    fs::write(&msg, message).unwrap();
    let args = ["-Y", "verify", "-f", signers.to_str().unwrap(), "-I", "login@breakglass", "-n", namespace];
    let out = ssh_keygen(&[&args[..], &["-s", sig.to_str().unwrap()]].concat(), Some(&msg));
    out.status.success()
}

/// `SHA256:…` as `ssh-keygen -l` prints it.
fn openssh_fingerprint(key: &Key) -> String {
    let out =
        check(ssh_keygen(&["-l", "-E", "sha256", "-f", key.path.with_extension("pub").to_str().unwrap()], None), "-l");
    String::from_utf8(out.stdout).unwrap().split_whitespace().nth(1).unwrap().to_owned()
}

// The SSHSIG blob (PROTOCOL.sshsig) on the testkit's SSH wire encoding, written here
// independently of the code under test.

/// The fields of an SSHSIG blob.
#[derive(Clone)]
struct Blob {
    public_key: Vec<u8>,
    namespace: Vec<u8>,
    hash_alg: Vec<u8>,
    signature: Vec<u8>,
}

impl Blob {
    fn parse(armored: &str) -> Blob {
        let body: String = armored.lines().filter(|l| !l.starts_with("-----")).collect();
        let bytes = B64.decode(body).unwrap();
        assert_eq!(&bytes[..10], b"SSHSIG\0\0\0\x01");
        let mut rest = &bytes[10..];
        let mut next = || {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let field = rest[4..4 + len].to_vec();
            rest = &rest[4 + len..];
            field
        };
        let (public_key, namespace, reserved, hash_alg, signature) = (next(), next(), next(), next(), next());
        assert!(reserved.is_empty() && rest.is_empty());
        Blob { public_key, namespace, hash_alg, signature }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = b"SSHSIG\0\0\0\x01".to_vec();
        out.extend(strings(&[&self.public_key, &self.namespace, b"", &self.hash_alg, &self.signature]));
        out
    }
}

fn armor(blob: &[u8]) -> String {
    let b64 = B64.encode(blob);
    let lines: Vec<&str> = b64.as_bytes().chunks(70).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----\n", lines.join("\n"))
}

/// The data an SSHSIG signature is made over.
fn signed_data(namespace: &str, message: &[u8]) -> Vec<u8> {
    let mut out = b"SSHSIG".to_vec();
    out.extend(strings(&[namespace.as_bytes(), b"", b"sha512", &Sha512::digest(message)]));
    out
}

/// The key types `ssh-keygen` can make here, by name and arguments.
const KEY_TYPES: &[(&str, &[&str])] = &[
    ("ssh-ed25519", &["-t", "ed25519"]),
    ("ecdsa-sha2-nistp256", &["-t", "ecdsa", "-b", "256"]),
    ("ecdsa-sha2-nistp384", &["-t", "ecdsa", "-b", "384"]),
    ("ecdsa-sha2-nistp521", &["-t", "ecdsa", "-b", "521"]),
    ("ssh-rsa", &["-t", "rsa", "-b", "2048"]),
];

#[test]
fn each_key_type_verifies_as_openssh_does() {
    let dir = TempDir::new().unwrap();
    let stranger = keygen(dir.path(), "stranger", &["-t", "ed25519"]);
    for (key_type, args) in KEY_TYPES {
        let key = keygen(dir.path(), key_type, args);
        let armored = sign(&key, NS, CHALLENGE);

        let allowed = [stranger.public.clone(), key.public.clone()];
        let v: Verified =
            sshsig::verify(&armored, CHALLENGE, NS, &allowed).unwrap_or_else(|e| panic!("{key_type}: {e}"));
        assert_eq!(v.key_index, 1, "{key_type}");
        assert_eq!(v.algorithm.as_str(), *key_type);
        assert_eq!(v.fingerprint.to_string(), openssh_fingerprint(&key), "{key_type}");
        assert_eq!(v.security_key, None);
        assert!(openssh_accepts(&key.line, NS, CHALLENGE, &armored), "{key_type}: ssh-keygen -Y verify refuses it");
    }
}

/// One way a signature can be wrong: the error it must get, and whether
/// `ssh-keygen -Y verify` (given the signer's key) must refuse it too.
struct Case<'a> {
    name: &'static str,
    armored: String,
    message: &'a [u8],
    allowed: Vec<PublicKey>,
    check: Box<dyn Fn(&SshSigError) -> bool>,
    openssh_refuses: bool,
}

fn case<'a>(
    name: &'static str,
    armored: String,
    message: &'a [u8],
    allowed: &[&Key],
    check: impl Fn(&SshSigError) -> bool + 'static,
) -> Case<'a> {
    let allowed = allowed.iter().map(|k| k.public.clone()).collect();
    Case { name, armored, message, allowed, check: Box::new(check), openssh_refuses: true }
}

fn bad_signature(e: &SshSigError) -> bool {
    matches!(e, SshSigError::BadSignature { .. })
}

#[test]
fn wrong_signatures_are_rejected_for_each_key_type() {
    let dir = TempDir::new().unwrap();
    for (key_type, args) in KEY_TYPES {
        let key = keygen(dir.path(), &format!("{key_type}-a"), args);
        let twin = keygen(dir.path(), &format!("{key_type}-b"), args);
        let good = sign(&key, NS, CHALLENGE);
        let blob = Blob::parse(&good);
        let blob_bytes = blob.to_bytes();
        let fingerprint = key.public.fingerprint(HashAlg::Sha256).to_string();
        let mut changed = CHALLENGE.to_vec();
        changed[CHALLENGE.len() / 2] ^= 0x20;
        let reblob = |f: &dyn Fn(&mut Blob)| {
            let mut b = blob.clone();
            f(&mut b);
            armor(&b.to_bytes())
        };
        let body_start = good.find('\n').unwrap() + 1;
        let twins_signature = Blob::parse(&sign(&twin, NS, CHALLENGE)).signature;

        let cases = [
            case("one byte of the challenge changed", good.clone(), &changed, &[&key], bad_signature),
            case("empty message", good.clone(), b"", &[&key], bad_signature),
            case("signed in another namespace", sign(&key, "file", CHALLENGE), CHALLENGE, &[&key], |e| {
                *e == SshSigError::WrongNamespace { expected: NS.into(), found: "file".into() }
            }),
            Case {
                openssh_refuses: false, // OpenSSH is not given the other key list.
                ..case(
                    "signing key not allowed",
                    good.clone(),
                    CHALLENGE,
                    &[&twin],
                    move |e| matches!(e, SshSigError::KeyNotAllowed { fingerprint: f, .. } if *f == fingerprint),
                )
            },
            Case {
                openssh_refuses: false,
                ..case("no allowed keys", good.clone(), CHALLENGE, &[], |e| {
                    matches!(e, SshSigError::KeyNotAllowed { .. })
                })
            },
            case(
                "an allowed key named on another allowed key's signature",
                reblob(&|b| b.signature = twins_signature.clone()),
                CHALLENGE,
                &[&key, &twin],
                bad_signature,
            ),
            case(
                "last signature byte flipped",
                reblob(&|b| *b.signature.last_mut().unwrap() ^= 1),
                CHALLENGE,
                &[&key],
                |e| matches!(e, SshSigError::BadSignature { .. } | SshSigError::MalformedSignature { .. }),
            ),
            case(
                "hash name changed to sha256",
                reblob(&|b| b.hash_alg = b"sha256".to_vec()),
                CHALLENGE,
                &[&key],
                bad_signature,
            ),
            case("armor cut in half", good[..good.len() / 2].to_owned(), CHALLENGE, &[&key], |e| {
                matches!(e, SshSigError::MalformedArmor(_))
            }),
            case(
                "armor garbled",
                format!("{}*{}", &good[..body_start + 10], &good[body_start + 11..]),
                CHALLENGE,
                &[&key],
                |e| matches!(e, SshSigError::MalformedArmor(_)),
            ),
            case("blob truncated, re-armored", armor(&blob_bytes[..blob_bytes.len() - 3]), CHALLENGE, &[&key], |e| {
                matches!(e, SshSigError::Malformed(_))
            }),
            case(
                "blob with trailing data, re-armored",
                armor(&[&blob_bytes[..], b"extra"].concat()),
                CHALLENGE,
                &[&key],
                |e| matches!(e, SshSigError::TrailingData(_)),
            ),
            Case {
                openssh_refuses: false, // OpenSSH ignores what follows the END line.
                ..case("text after the END line", format!("{good}trailing garbage\n"), CHALLENGE, &[&key], |e| {
                    matches!(e, SshSigError::TrailingData(_))
                })
            },
        ];
        for c in cases {
            let got = sshsig::verify(&c.armored, c.message, NS, &c.allowed);
            assert!(got.as_ref().is_err_and(|e| (c.check)(e)), "{key_type}: {}: got {got:?}", c.name);
            if c.openssh_refuses {
                let accepted = openssh_accepts(&key.line, NS, c.message, &c.armored);
                assert!(!accepted, "{key_type}: {}: OpenSSH accepts it", c.name);
            }
        }
    }
}

/// `ssh-keygen -Y sign` always uses rsa-sha2-512; rsa-sha2-256 (which an
/// agent may pick) is made here with the same key. Legacy ssh-rsa (SHA-1) is
/// refused by name, before any cryptography, so relabelling a signature
/// suffices to test it.
#[test]
fn rsa_sha2_256_is_accepted_and_ssh_rsa_is_refused() {
    let dir = TempDir::new().unwrap();
    let key = keygen(dir.path(), "rsa", &["-t", "rsa", "-b", "2048"]);
    let private = PrivateKey::read_openssh_file(&key.path).unwrap();
    let keypair = private.key_data().rsa().unwrap();
    // Not ssh-key's own conversion: in 0.6.7 it passes p twice instead of p
    // and q, so ssh-key cannot sign with RSA keys (verifying is unaffected).
    let int = |m: &ssh_key::Mpint| rsa::BigUint::from_bytes_be(m.as_positive_bytes().unwrap());
    let (public, secret) = (&keypair.public, &keypair.private);
    let components = (int(&public.n), int(&public.e), int(&secret.d), vec![int(&secret.p), int(&secret.q)]);
    let private = rsa::RsaPrivateKey::from_components(components.0, components.1, components.2, components.3).unwrap();
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(private);
    let rsa_sig = signer.sign(&signed_data(NS, CHALLENGE)).to_vec();
    let blob = Blob {
        public_key: key.public.to_bytes().unwrap(),
        namespace: NS.as_bytes().to_vec(),
        hash_alg: b"sha512".to_vec(),
        signature: strings(&[b"rsa-sha2-256", &rsa_sig]),
    };
    let armored = armor(&blob.to_bytes());
    let allowed = std::slice::from_ref(&key.public);
    assert!(sshsig::verify(&armored, CHALLENGE, NS, allowed).is_ok());
    assert!(openssh_accepts(&key.line, NS, CHALLENGE, &armored));

    let relabel =
        |name: &[u8], sig: &[u8]| armor(&Blob { signature: strings(&[name, sig]), ..blob.clone() }.to_bytes());
    // The same PKCS#1 signature named rsa-sha2-512: the hash does not match.
    let as_512 = relabel(b"rsa-sha2-512", &rsa_sig);
    assert!(matches!(sshsig::verify(&as_512, CHALLENGE, NS, allowed), Err(SshSigError::BadSignature { .. })));
    assert!(!openssh_accepts(&key.line, NS, CHALLENGE, &as_512));
    let as_ssh_rsa = relabel(b"ssh-rsa", &rsa_sig);
    assert_eq!(sshsig::verify(&as_ssh_rsa, CHALLENGE, NS, allowed), Err(SshSigError::LegacyRsaSha1));
    assert!(!openssh_accepts(&key.line, NS, CHALLENGE, &as_ssh_rsa));
}

#[test]
fn small_rsa_keys_are_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("rsa1024");
    let args = ["-q", "-N", "", "-t", "rsa", "-b", "1024", "-f", path.to_str().unwrap()];
    check(ssh_keygen(&args, None), "ssh-keygen -t rsa -b 1024");
    let line = fs::read_to_string(path.with_extension("pub")).unwrap();

    let err = sshsig::parse_public_key(&line).unwrap_err();
    assert!(err.to_string().contains("has 1024 bits"), "{err}");
    // A key list built some other way is still checked when it matters.
    let public = PublicKey::from_openssh(&line).unwrap();
    let key = Key { path, line, public: public.clone() };
    let got = sshsig::verify(&sign(&key, NS, CHALLENGE), CHALLENGE, NS, &[public]);
    assert!(matches!(got, Err(SshSigError::UnsupportedRsaKeySize { bits: 1024, .. })), "{got:?}");
}

/// A FIDO authenticator, simulated: it signs `SHA256(application) || flags ||
/// counter || SHA256(data)` (PROTOCOL.u2f) with an Ed25519 or P-256 key.
enum Authenticator {
    Ed25519(ed25519_dalek::SigningKey),
    P256(ssh_key::private::EcdsaKeypair),
}

struct SkKey {
    authenticator: Authenticator,
    application: &'static str,
}

impl SkKey {
    fn key_type(&self) -> &'static str {
        match self.authenticator {
            Authenticator::Ed25519(_) => "sk-ssh-ed25519@openssh.com",
            Authenticator::P256(_) => "sk-ecdsa-sha2-nistp256@openssh.com",
        }
    }

    fn public_blob(&self) -> Vec<u8> {
        let (name, app) = (self.key_type().as_bytes(), self.application.as_bytes());
        match &self.authenticator {
            Authenticator::Ed25519(k) => strings(&[name, k.verifying_key().as_bytes(), app]),
            Authenticator::P256(k) => strings(&[name, b"nistp256", k.public_key_bytes(), app]),
        }
    }

    fn public(&self) -> PublicKey {
        PublicKey::from_bytes(&self.public_blob()).unwrap()
    }

    fn line(&self) -> String {
        format!("{} {} yubikey", self.key_type(), B64.encode(self.public_blob()))
    }

    /// An armored SSHSIG over `message`, as `ssh-keygen -Y sign` with this key would make it.
    fn sign(&self, message: &[u8], flags: u8, counter: u32, application: &str) -> String {
        let mut to_sign = Sha256::digest(application.as_bytes()).to_vec();
        to_sign.push(flags);
        to_sign.extend_from_slice(&counter.to_be_bytes());
        to_sign.extend_from_slice(&Sha256::digest(signed_data(NS, message)));
        let raw = match &self.authenticator {
            Authenticator::Ed25519(k) => k.sign(&to_sign).to_bytes().to_vec(),
            // ECDSA with SHA-256 over to_sign, encoded as `mpint r, mpint s`.
            Authenticator::P256(k) => {
                let sig: ssh_key::Signature = k.try_sign(&to_sign).unwrap();
                sig.as_bytes().to_vec()
            }
        };
        let mut signature = strings(&[self.key_type().as_bytes(), &raw]);
        signature.push(flags);
        signature.extend_from_slice(&counter.to_be_bytes());
        let blob = Blob {
            public_key: self.public_blob(),
            namespace: NS.as_bytes().to_vec(),
            hash_alg: b"sha512".to_vec(),
            signature,
        };
        armor(&blob.to_bytes())
    }
}

#[test]
fn security_keys_need_user_presence() {
    let dir = TempDir::new().unwrap();
    let ecdsa = keygen(dir.path(), "p256", &["-t", "ecdsa", "-b", "256"]);
    let p256 = PrivateKey::read_openssh_file(&ecdsa.path).unwrap().key_data().ecdsa().unwrap().clone();
    let keys = [
        SkKey {
            authenticator: Authenticator::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[9; 32])),
            application: "ssh:",
        },
        SkKey { authenticator: Authenticator::P256(p256), application: "ssh:" },
    ];
    for key in &keys {
        let kt = key.key_type();
        let public = sshsig::parse_public_key(&key.line()).unwrap();
        assert_eq!(public.key_data(), key.public().key_data());
        let fingerprint = public.fingerprint(HashAlg::Sha256);

        // Flags the user can get: touch (UP), touch and PIN (UP|UV).
        for flags in [SK_USER_PRESENT, SK_USER_PRESENT | SK_USER_VERIFIED] {
            let armored = key.sign(CHALLENGE, flags, 42, "ssh:");
            let v = sshsig::verify(&armored, CHALLENGE, NS, std::slice::from_ref(&public))
                .unwrap_or_else(|e| panic!("{kt} flags {flags:#04x}: {e}"));
            assert_eq!((v.key_index, v.fingerprint, v.algorithm.as_str()), (0, fingerprint, kt));
            let sk = v.security_key.unwrap();
            assert_eq!((sk.flags, sk.counter, sk.user_verified()), (flags, 42, flags & SK_USER_VERIFIED != 0));
            assert!(
                openssh_accepts(&key.line(), NS, CHALLENGE, &armored),
                "{kt} flags {flags:#04x}: OpenSSH refuses it"
            );
            // The flags are signed: raising them afterwards breaks the signature.
            let mut blob = Blob::parse(&armored);
            let flags_at = blob.signature.len() - 5;
            blob.signature[flags_at] |= 0x80;
            let raised = sshsig::verify(&armor(&blob.to_bytes()), CHALLENGE, NS, std::slice::from_ref(&public));
            assert!(matches!(raised, Err(SshSigError::BadSignature { .. })), "{kt}: {raised:?}");
        }

        // Without a touch (no-touch-required keys, or a forged flag byte).
        for flags in [0x00, SK_USER_VERIFIED] {
            let armored = key.sign(CHALLENGE, flags, 42, "ssh:");
            assert_eq!(
                sshsig::verify(&armored, CHALLENGE, NS, std::slice::from_ref(&public)),
                Err(SshSigError::UserPresenceNotAsserted {
                    key_type: kt.into(),
                    fingerprint: fingerprint.to_string(),
                    flags
                })
            );
        }

        // Signed for another application (another relying party's credential).
        let armored = key.sign(CHALLENGE, SK_USER_PRESENT, 42, "ssh:other");
        let got = sshsig::verify(&armored, CHALLENGE, NS, std::slice::from_ref(&public));
        assert!(matches!(got, Err(SshSigError::BadSignature { .. })), "{kt}: {got:?}");
        assert!(!openssh_accepts(&key.line(), NS, CHALLENGE, &armored));

        // Over another challenge.
        let armored = key.sign(b"another challenge", SK_USER_PRESENT, 42, "ssh:");
        let got = sshsig::verify(&armored, CHALLENGE, NS, std::slice::from_ref(&public));
        assert!(matches!(got, Err(SshSigError::BadSignature { .. })), "{kt}: {got:?}");
        assert!(!openssh_accepts(&key.line(), NS, CHALLENGE, &armored));
    }
}
