package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentix/agentix-store/attest"
)

func generateAttestKey() ([]byte, []byte, error) { return attest.GenerateKey(attest.AlgEd25519) }

// PublicKeys are the node's public keys, as `agentix-store key show` prints them.
type PublicKeys struct {
	Name string `json:"name"`
	// Attestation key: PEM and key id (hex SHA-256 of the PKIX DER).
	AttestPEM   string `json:"attestation_key_pem"`
	AttestKeyID string `json:"attestation_key_id"`
	// Log checkpoint origin and note verifier key.
	LogOrigin string `json:"log_origin"`
	LogKey    string `json:"log_key"`
	// Witness cosignature verifier key.
	WitnessKey string `json:"witness_key"`
	// Nix binary-cache public key (name:base64).
	NixKey string `json:"nix_key"`
}

// ReadPublicKeys reads the public keys of the node in dir.
func ReadPublicKeys(dir string) (*PublicKeys, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	return readPublicKeys(dir, cfg)
}

// readPublicKeys reads the public keys of the node in dir whose config is
// cfg.
func readPublicKeys(dir string, cfg *Config) (*PublicKeys, error) {
	pk := &PublicKeys{Name: cfg.Name, LogOrigin: cfg.Origin}
	pem, err := os.ReadFile(filepath.Join(dir, AttestPubFile))
	if err != nil {
		return nil, fmt.Errorf("read attestation public key: %w", err)
	}
	v, err := attest.LoadVerifier(pem)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, AttestPubFile), err)
	}
	pk.AttestPEM = string(pem)
	pk.AttestKeyID = v.KeyID()
	if pk.LogKey, err = ReadKey(dir, LogPubFile); err != nil {
		return nil, err
	}
	if pk.WitnessKey, err = ReadKey(dir, WitnessPubFile); err != nil {
		return nil, err
	}
	if pk.NixKey, err = ReadKey(dir, NixPubFile); err != nil {
		return nil, err
	}
	return pk, nil
}

// OwnTrustPolicy returns the trust policy naming only this node: its log, its
// attestation key and its Nix key, with no approvers and no witnesses
// required. Auditors start from it and add approvers and witnesses. cfg is
// the node's config (its name and log origin).
func OwnTrustPolicy(dir string, cfg *Config) ([]byte, error) {
	pk, err := readPublicKeys(dir, cfg)
	if err != nil {
		return nil, err
	}
	pol := map[string]any{
		"version": 1,
		"logs":    []any{map[string]any{"origin": pk.LogOrigin, "key": pk.LogKey}},
		"nodes": []any{map[string]any{
			"name":     pk.Name,
			"keys":     []any{map[string]any{"id": pk.AttestKeyID, "pem": pk.AttestPEM}},
			"nix_keys": []string{pk.NixKey},
			"log":      pk.LogOrigin,
		}},
		"approvers": map[string]any{"threshold": 0, "keys": []any{}},
		"witnesses": map[string]any{"quorum": 0, "keys": []any{}},
	}
	b, err := json.MarshalIndent(pol, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
