package attest

import (
	"encoding/json"
	"fmt"
	"os"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// PolicyVersion is the only trust policy version understood.
const PolicyVersion = 1

// Policy is an auditor's trust policy: which logs, node keys, approver keys
// and witnesses it trusts. It is a JSON file (see testdata/trust-policy.example.json):
//
//	{
//	  "version": 1,
//	  "logs": [{"origin": "<checkpoint origin line>", "key": "<signed-note verifier key>"}],
//	  "nodeKeys": [{"name": "...", "keyid": "<KeyID>", "publicKey": "<PKIX PEM>"}],
//	  "nodes": [{"name": "...", "keys": [{"id": "<KeyID>", "pem": "<PKIX PEM>"}],
//	             "nix_keys": ["name:base64"], "log": "<origin>"}],
//	  "approvers": {"threshold": M, "keys": [<key>, ...]},
//	  "witnesses": {"quorum": Q, "keys": ["<signed-note verifier key>", ...]},
//	  "boundary": { ... }
//	}
//
// nodeKeys, and the keys of nodes (the form agentix-store init writes),
// sign the node's own predicates (audit-log, proposal, apply,
// running-config). An approval/v1 envelope counts only approver keys, and is
// valid when at least threshold distinct approver keys signed it (m-of-n,
// 1 ≤ m ≤ n); with no approver keys (single-operator mode) the threshold must
// be 0 and no approval verifies. A key's "keyid", when given, must equal
// KeyID of its publicKey. Log keys are C2SP signed-note verifier keys
// ("name+hash+base64"); a checkpoint is accepted for a log only when signed
// by its key and cosigned by at least quorum distinct witness keys. Witness
// keys are C2SP tlog-cosignature (cosignature/v1) verifier keys; a plain
// Ed25519 signed-note verifier key is taken as its cosignature/v1 form. The boundary object is
// the safety-boundary policy and is passed through uninterpreted.
type Policy struct {
	Version   int             `json:"version"`
	Logs      []LogPolicy     `json:"logs"`
	NodeKeys  []KeyPolicy     `json:"nodeKeys,omitempty"`
	Nodes     []NodePolicy    `json:"nodes,omitempty"`
	Approvers ApproverPolicy  `json:"approvers"`
	Witnesses WitnessPolicy   `json:"witnesses"`
	Boundary  json.RawMessage `json:"boundary,omitempty"`
	// Configuration pins the configuration chain's genesis.
	Configuration ConfigurationPolicy `json:"configuration,omitzero"`

	node, approvers, all *KeySet
	logs                 map[string]note.Verifier // by origin
	witnesses            []note.Verifier
}

// ConfigurationPolicy says which configuration chains the auditor accepts.
type ConfigurationPolicy struct {
	// Genesis lists the NAR hashes (SRI "sha256-…", as Nix's
	// locked.narHash) a chain may start from. Empty: the first genesis an
	// auditor sees for a workspace is trusted on first use and remembered.
	Genesis []string `json:"genesis,omitempty"`
}

// LogPolicy names one trusted log.
type LogPolicy struct {
	Origin string `json:"origin"`
	Key    string `json:"key"`
}

// KeyPolicy is one trusted attestation key.
type KeyPolicy struct {
	Name      string `json:"name,omitempty"`
	KeyID     string `json:"keyid,omitempty"`
	PublicKey string `json:"publicKey"`
}

// ApproverPolicy is the approver keys and the m-of-n threshold.
type ApproverPolicy struct {
	Threshold int         `json:"threshold"`
	Keys      []KeyPolicy `json:"keys"`
}

// NodePolicy describes one node as agentix-store init writes it into
// <dir>/trust-policy.json: its attestation keys, Nix keys and log origin.
// Its keys are node keys, like those of nodeKeys.
type NodePolicy struct {
	Name    string    `json:"name"`
	Keys    []NodeKey `json:"keys"`
	NixKeys []string  `json:"nix_keys,omitempty"`
	Log     string    `json:"log,omitempty"`
}

// NodeKey is one attestation key of a NodePolicy.
type NodeKey struct {
	ID  string `json:"id,omitempty"`
	PEM string `json:"pem"`
}

// WitnessPolicy is the witness keys and how many must cosign.
type WitnessPolicy struct {
	Quorum int      `json:"quorum"`
	Keys   []string `json:"keys"`
}

// ParsePolicy decodes and checks a trust policy. Every failure matches
// ErrBadPolicy and names the offending entry. The decoding is strict:
// member names match exactly, and unknown members (so "Threshold" as well),
// repeated member names anywhere (boundary included), invalid UTF-8 and
// trailing data fail, naming the member.
func ParsePolicy(b []byte) (*Policy, error) {
	var p Policy
	if err := decodeStrict(b, &p, true); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPolicy, err)
	}
	if err := p.compile(); err != nil {
		return nil, err
	}
	return &p, nil
}

// LoadPolicy reads and parses a trust policy file.
func LoadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read trust policy: %w", err)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Marshal encodes the policy as indented JSON.
func (p *Policy) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// KeyPolicyFor describes a verifier as a policy entry.
func KeyPolicyFor(name string, v *Verifier) KeyPolicy {
	return KeyPolicy{Name: name, KeyID: v.KeyID(), PublicKey: string(v.PublicKeyPEM())}
}

func (p *Policy) compile() error {
	if p.Version != PolicyVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrBadPolicy, p.Version, PolicyVersion)
	}
	keys := func(section string, ks []KeyPolicy) (*KeySet, error) {
		var vs []*Verifier
		seen := map[string]bool{}
		for i, k := range ks {
			v, err := LoadVerifier([]byte(k.PublicKey))
			if err != nil {
				return nil, fmt.Errorf("%w: %s[%d] (%s): %v", ErrBadPolicy, section, i, k.Name, err)
			}
			if k.KeyID != "" && k.KeyID != v.KeyID() {
				return nil, fmt.Errorf("%w: %s[%d] (%s): keyid %s does not match the public key (%s)", ErrBadPolicy, section, i, k.Name, k.KeyID, v.KeyID())
			}
			if seen[v.KeyID()] {
				return nil, fmt.Errorf("%w: %s[%d] (%s): key %s listed twice", ErrBadPolicy, section, i, k.Name, v.KeyID())
			}
			seen[v.KeyID()] = true
			vs = append(vs, v)
		}
		return NewKeySet(vs...), nil
	}
	var err error
	nodeKeys := append([]KeyPolicy(nil), p.NodeKeys...)
	for _, n := range p.Nodes {
		for _, k := range n.Keys {
			nodeKeys = append(nodeKeys, KeyPolicy{Name: n.Name, KeyID: k.ID, PublicKey: k.PEM})
		}
	}
	if p.node, err = keys("nodeKeys", nodeKeys); err != nil {
		return err
	}
	if p.approvers, err = keys("approvers.keys", p.Approvers.Keys); err != nil {
		return err
	}
	n := len(p.Approvers.Keys)
	if n == 0 && p.Approvers.Threshold != 0 {
		return fmt.Errorf("%w: approvers.threshold %d with no approver keys", ErrBadPolicy, p.Approvers.Threshold)
	}
	if n > 0 && (p.Approvers.Threshold < 1 || p.Approvers.Threshold > n) {
		return fmt.Errorf("%w: approvers.threshold %d, want 1..%d", ErrBadPolicy, p.Approvers.Threshold, n)
	}
	p.all = NewKeySet(append(p.node.List(), p.approvers.List()...)...)

	p.logs = map[string]note.Verifier{}
	for i, l := range p.Logs {
		if l.Origin == "" {
			return fmt.Errorf("%w: logs[%d]: empty origin", ErrBadPolicy, i)
		}
		if _, dup := p.logs[l.Origin]; dup {
			return fmt.Errorf("%w: logs[%d]: origin %q listed twice", ErrBadPolicy, i, l.Origin)
		}
		v, err := fnote.NewVerifier(l.Key)
		if err != nil {
			return fmt.Errorf("%w: logs[%d] (%s): key: %v", ErrBadPolicy, i, l.Origin, err)
		}
		p.logs[l.Origin] = v
	}
	for i, n := range p.Nodes {
		if _, ok := p.logs[n.Log]; n.Log != "" && !ok {
			return fmt.Errorf("%w: nodes[%d] (%s): log %q is not among the policy's logs", ErrBadPolicy, i, n.Name, n.Log)
		}
	}
	p.witnesses = nil
	for i, k := range p.Witnesses.Keys {
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			return fmt.Errorf("%w: witnesses.keys[%d]: %v", ErrBadPolicy, i, err)
		}
		for _, w := range p.witnesses {
			if w.Name() == v.Name() && w.KeyHash() == v.KeyHash() {
				return fmt.Errorf("%w: witnesses.keys[%d]: %s listed twice", ErrBadPolicy, i, v.Name())
			}
		}
		p.witnesses = append(p.witnesses, v)
	}
	if p.Witnesses.Quorum < 0 || p.Witnesses.Quorum > len(p.witnesses) {
		return fmt.Errorf("%w: witnesses.quorum %d, want 0..%d", ErrBadPolicy, p.Witnesses.Quorum, len(p.witnesses))
	}
	return nil
}

// NodeKeys returns the trusted node keys.
func (p *Policy) NodeKeySet() *KeySet { return p.node }

// ApproverKeySet returns the trusted approver keys.
func (p *Policy) ApproverKeySet() *KeySet { return p.approvers }

// roleFor returns the keys and threshold that must sign a predicate type.
func (p *Policy) roleFor(predicateType string) (role string, ks *KeySet, threshold int) {
	if predicateType == PredicateApproval {
		return "approver", p.approvers, p.Approvers.Threshold
	}
	return "node", p.node, 1
}
