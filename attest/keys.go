package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Key algorithms accepted for attestation keys.
const (
	// AlgEd25519 is the default: pure Ed25519 (RFC 8032) over the DSSE PAE.
	AlgEd25519 = "ed25519"
	// AlgECDSAP256 is ECDSA over NIST P-256 with SHA-256, ASN.1 DER signatures.
	AlgECDSAP256 = "ecdsa-p256"
)

// ErrUnsupportedKey is returned for key material that is neither Ed25519 nor
// ECDSA P-256, or for an unknown algorithm name.
var ErrUnsupportedKey = errors.New("unsupported key type (want ed25519 or ecdsa-p256)")

// ErrBadKey is returned when a PEM key cannot be decoded or parsed.
var ErrBadKey = errors.New("malformed key")

// KeyID returns the key id of a public key: the lowercase hex SHA-256 of its
// PKIX (SubjectPublicKeyInfo) ASN.1 DER encoding, 64 characters.
//
// The same key always has the same id whatever file or PEM header it came
// from; it is the keyid written into DSSE signatures and the name used for
// keys in trust policies and indexes. KeyID returns "" for a key that cannot
// be PKIX-encoded.
func KeyID(pub crypto.PublicKey) string {
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// algOf names the algorithm of a supported public key, or fails with
// ErrUnsupportedKey.
func algOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("%w: ed25519 key of %d bytes", ErrBadKey, len(k))
		}
		return AlgEd25519, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("%w: ECDSA curve %s", ErrUnsupportedKey, k.Curve.Params().Name)
		}
		return AlgECDSAP256, nil
	}
	return "", fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}

// GenerateKey creates a new key pair for alg (AlgEd25519 when alg is "") and
// returns it PEM-encoded: the private key as unencrypted PKCS#8 ("PRIVATE
// KEY"), the public key as PKIX ("PUBLIC KEY").
func GenerateKey(alg string) (privPEM, pubPEM []byte, err error) {
	var priv crypto.Signer
	switch alg {
	case "", AlgEd25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case AlgECDSAP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, nil, fmt.Errorf("%w: algorithm %q", ErrUnsupportedKey, alg)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	privPEM, err = cryptoutils.MarshalPrivateKeyToPEM(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("encode private key: %w", err)
	}
	pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("encode public key: %w", err)
	}
	return privPEM, pubPEM, nil
}

// WriteKeyFiles writes a key pair produced by GenerateKey: the private key to
// privPath with mode 0600 and the public key to pubPath (if not "") with mode
// 0644. It never overwrites: if either file exists it fails with an error
// satisfying errors.Is(err, fs.ErrExist) and writes nothing new.
func WriteKeyFiles(privPath, pubPath string, privPEM, pubPEM []byte) error {
	for _, p := range []string{privPath, pubPath} {
		if p == "" {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("key file %s: %w", p, fs.ErrExist)
		}
	}
	if err := writeExclusive(privPath, privPEM, 0o600); err != nil {
		return err
	}
	if pubPath != "" {
		if err := writeExclusive(pubPath, pubPEM, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync key file %s: %w", path, err)
	}
	return f.Close()
}

// Signer signs with one private attestation key through sigstore's
// signature.SignerVerifier. It is safe for concurrent use.
type Signer struct {
	sv    signature.SignerVerifier
	pub   crypto.PublicKey
	alg   string
	keyID string
}

// ParsePrivateKeyPEM parses an unencrypted private key (PKCS#8 "PRIVATE KEY",
// or SEC 1 "EC PRIVATE KEY") holding an Ed25519 or ECDSA P-256 key.
func ParsePrivateKeyPEM(privPEM []byte) (*Signer, error) {
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(privPEM, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %v", ErrBadKey, err)
	}
	cs, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, priv)
	}
	pub := cs.Public()
	alg, err := algOf(pub)
	if err != nil {
		return nil, err
	}
	sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("load %s signer: %w", alg, err)
	}
	return &Signer{sv: sv, pub: pub, alg: alg, keyID: KeyID(pub)}, nil
}

// LoadSigner reads a private key PEM file (see ParsePrivateKeyPEM).
func LoadSigner(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	s, err := ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// KeyID returns the signer's key id (see KeyID).
func (s *Signer) KeyID() string { return s.keyID }

// Algorithm returns AlgEd25519 or AlgECDSAP256.
func (s *Signer) Algorithm() string { return s.alg }

// PublicKey returns the signer's public key.
func (s *Signer) PublicKey() crypto.PublicKey { return s.pub }

// PublicKeyPEM returns the signer's public key as a PKIX "PUBLIC KEY" PEM.
func (s *Signer) PublicKeyPEM() []byte {
	b, _ := cryptoutils.MarshalPublicKeyToPEM(s.pub) // cannot fail for a supported key
	return b
}

// Verifier returns a verifier for the signer's public key.
func (s *Signer) Verifier() *Verifier {
	return &Verifier{v: s.sv, pub: s.pub, alg: s.alg, keyID: s.keyID}
}

// Sign signs msg: Ed25519 over msg itself, ECDSA P-256 over SHA-256(msg)
// with an ASN.1 DER signature.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	sig, err := s.sv.SignMessage(bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("sign with key %s: %w", s.keyID, err)
	}
	return sig, nil
}

var errEd25519 = errors.New("ed25519: invalid signature")

// Verifier checks signatures of one public attestation key through sigstore's
// signature.Verifier. It is safe for concurrent use.
type Verifier struct {
	v     signature.Verifier
	pub   crypto.PublicKey
	alg   string
	keyID string
}

// LoadVerifier parses a PKIX "PUBLIC KEY" PEM holding an Ed25519 or ECDSA
// P-256 public key.
func LoadVerifier(pubPEM []byte) (*Verifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrBadKey, err)
	}
	return NewVerifier(pub)
}

// LoadVerifierFile reads a public key PEM file (see LoadVerifier).
func LoadVerifierFile(path string) (*Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	v, err := LoadVerifier(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// NewVerifier wraps an Ed25519 or ECDSA P-256 public key.
func NewVerifier(pub crypto.PublicKey) (*Verifier, error) {
	alg, err := algOf(pub)
	if err != nil {
		return nil, err
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("load %s verifier: %w", alg, err)
	}
	return &Verifier{v: v, pub: pub, alg: alg, keyID: KeyID(pub)}, nil
}

// KeyID returns the verifier's key id (see KeyID).
func (v *Verifier) KeyID() string { return v.keyID }

// Algorithm returns AlgEd25519 or AlgECDSAP256.
func (v *Verifier) Algorithm() string { return v.alg }

// PublicKey returns the verifier's public key.
func (v *Verifier) PublicKey() crypto.PublicKey { return v.pub }

// PublicKeyPEM returns the public key as a PKIX "PUBLIC KEY" PEM.
func (v *Verifier) PublicKeyPEM() []byte {
	b, _ := cryptoutils.MarshalPublicKeyToPEM(v.pub)
	return b
}

// Verify checks sig over msg. It returns nil only for a valid signature.
//
// Ed25519 signatures are checked with crypto/ed25519 directly (what sigstore's
// ED25519Verifier does, without copying msg through a reader); ECDSA goes
// through sigstore's verifier.
func (v *Verifier) Verify(msg, sig []byte) error {
	if k, ok := v.pub.(ed25519.PublicKey); ok {
		if !ed25519.Verify(k, msg, sig) {
			return fmt.Errorf("signature by key %s: %w", v.keyID, errEd25519)
		}
		return nil
	}
	if err := v.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("signature by key %s: %w", v.keyID, err)
	}
	return nil
}
