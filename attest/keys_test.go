package attest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func TestGenerateSignVerify(t *testing.T) {
	for _, tc := range []struct {
		alg, want string
	}{
		{"", AlgEd25519},
		{AlgEd25519, AlgEd25519},
		{AlgECDSAP256, AlgECDSAP256},
	} {
		t.Run(tc.want+"/"+tc.alg, func(t *testing.T) {
			privPEM, pubPEM, err := GenerateKey(tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			s, err := ParsePrivateKeyPEM(privPEM)
			if err != nil {
				t.Fatal(err)
			}
			v, err := LoadVerifier(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			if s.Algorithm() != tc.want || v.Algorithm() != tc.want {
				t.Fatalf("algorithm: signer %q verifier %q, want %q", s.Algorithm(), v.Algorithm(), tc.want)
			}
			if s.KeyID() != v.KeyID() || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(s.KeyID()) {
				t.Fatalf("key ids %q / %q", s.KeyID(), v.KeyID())
			}
			if string(s.PublicKeyPEM()) != string(pubPEM) {
				t.Fatalf("public PEM differs")
			}
			msg := []byte("hello")
			sig, err := s.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(msg, sig); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if err := v.Verify([]byte("hellO"), sig); err == nil {
				t.Fatal("verify accepted a changed message")
			}
		})
	}
}

func TestGenerateKeyErrors(t *testing.T) {
	if _, _, err := GenerateKey("rsa-2048"); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("GenerateKey(rsa-2048) = %v, want ErrUnsupportedKey", err)
	}
	for name, in := range map[string][]byte{
		"empty":   nil,
		"garbage": []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
	} {
		if _, err := ParsePrivateKeyPEM(in); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: ParsePrivateKeyPEM = %v, want ErrBadKey", name, err)
		}
		if _, err := LoadVerifier(in); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: LoadVerifier = %v, want ErrBadKey", name, err)
		}
	}
}

func TestWriteKeyFiles(t *testing.T) {
	dir := t.TempDir()
	priv, pub, err := GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	pp, pu := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	if err := WriteKeyFiles(pp, pu, priv, pub); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(pp)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, want 0600", st.Mode().Perm())
	}
	s, err := LoadSigner(pp)
	if err != nil {
		t.Fatal(err)
	}
	v, err := LoadVerifierFile(pu)
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID() != v.KeyID() {
		t.Fatal("key ids differ after round trip through files")
	}
	priv2, pub2, _ := GenerateKey("")
	if err := WriteKeyFiles(pp, pu, priv2, pub2); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteKeyFiles = %v, want fs.ErrExist", err)
	}
	s2, _ := LoadSigner(pp)
	if s2.KeyID() != s.KeyID() {
		t.Fatal("key was overwritten")
	}
}
