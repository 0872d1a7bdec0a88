package node

import (
	"os"
	"path/filepath"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func TestResolveDir(t *testing.T) {
	t.Setenv("AGENTIX_STORE_DIR", "")
	t.Setenv("XDG_DATA_HOME", "/xdg")
	tests := []struct {
		flag, env, want string
	}{
		{"/flag", "/env", "/flag"},
		{"", "/env", "/env"},
		{"", "", "/xdg/agentix-store"},
	}
	for _, tc := range tests {
		t.Setenv("AGENTIX_STORE_DIR", tc.env)
		got, err := ResolveDir(tc.flag)
		if err != nil || got != tc.want {
			t.Errorf("ResolveDir(%q) with env %q = %q, %v; want %q", tc.flag, tc.env, got, err, tc.want)
		}
	}
}

// The witness public key written by Init is the cosignature/v1 form of the
// witness private key: cosignatures made with the key verify with it, and
// the key hashes agree.
func TestWitnessKeyIsCosignatureV1(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, InitOptions{Name: "w"}); err != nil {
		t.Fatal(err)
	}
	skey, _ := ReadKey(dir, WitnessKeyFile)
	vkey, _ := ReadKey(dir, WitnessPubFile)
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyHash() != v.KeyHash() || s.Name() != v.Name() {
		t.Fatalf("signer %s/%08x, verifier %s/%08x", s.Name(), s.KeyHash(), v.Name(), v.KeyHash())
	}
	msg, err := note.Sign(&note.Note{Text: "example.com/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("cosignature does not verify with the written key: %v", err)
	}
	if _, err := CosignatureVKey("junk"); err == nil {
		t.Fatal("CosignatureVKey accepted junk")
	}
}

func TestInitKeepsKeysAndOpenRefusesUninitialised(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "none"), OpenOptions{}); err == nil {
		t.Fatal("Open of an empty dir succeeded")
	}
	if _, err := Init(dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	k1, _ := os.ReadFile(filepath.Join(dir, AttestKeyFile))
	os.Remove(filepath.Join(dir, NixKeyFile))
	res, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := os.ReadFile(filepath.Join(dir, AttestKeyFile))
	if string(k1) != string(k2) {
		t.Fatal("second Init replaced the attestation key")
	}
	created := map[string]bool{}
	for _, c := range res.Created {
		created[c] = true
	}
	if !created[NixKeyFile] || created[AttestKeyFile] || created[LogKeyFile] {
		t.Fatalf("second Init created %v; want only the missing Nix key (and derived files)", res.Created)
	}
	n, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Log == nil || n.Store == nil {
		t.Fatal("Open did not open the store and log")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}
