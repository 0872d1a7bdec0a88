package node

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"golang.org/x/mod/sumdb/note"
)

// File names inside a data directory.
const (
	ConfigFile      = "config.json"
	TokenFile       = "token"
	TrustPolicyFile = "trust-policy.json"
	AttestKeyFile   = "keys/attest.key"
	AttestPubFile   = "keys/attest.pub"
	LogKeyFile      = "keys/log.key"
	LogPubFile      = "keys/log.pub"
	WitnessKeyFile  = "keys/witness.key"
	WitnessPubFile  = "keys/witness.pub"
	NixKeyFile      = "keys/nix.key"
	NixPubFile      = "keys/nix.pub"
)

// DefaultListen is the daemon's default address: loopback only.
const DefaultListen = "127.0.0.1:7171"

// ErrNotInitialised is returned when a data directory has no config.
var ErrNotInitialised = errors.New("data directory is not initialised (run `agentix-store init`)")

// Config is the node's config.json.
type Config struct {
	// Name names the node; it is the signer name of its keys.
	Name string `json:"name"`
	// Origin is the log's checkpoint origin line.
	Origin string `json:"origin"`
	// Listen is the daemon's listen address.
	Listen string `json:"listen"`
	// Chunker is the default chunker for add.
	Chunker string `json:"chunker"`
	// SyncWrites makes every block write durable before it returns.
	SyncWrites bool `json:"sync_writes"`
	// NixCompression is the compression of NARs the binary cache points
	// to: "none" (default) or "zstd".
	NixCompression string `json:"nix_compression,omitempty"`
	// Witnesses asked to cosign each new checkpoint of this node's log.
	Witnesses []Witness `json:"witnesses,omitempty"`
	// Peers are other nodes' logs this node witnesses.
	Peers []Peer `json:"peers,omitempty"`
	// Workspaces are the Agentix workspaces the daemon follows: it ingests
	// each as Agentix appends to its audit log.
	Workspaces []WorkspaceConfig `json:"workspaces,omitempty"`
	// RunningSystem is the symlink to the running NixOS system the daemon
	// follows ("" means DefaultRunningSystem); see RunningSystemPath.
	RunningSystem string `json:"runningSystem,omitempty"`
}

// DefaultRunningSystem is the running system's symlink on NixOS.
const DefaultRunningSystem = "/run/current-system"

// RunningSystemPath is c.RunningSystem, or DefaultRunningSystem when unset.
func (c *Config) RunningSystemPath() string {
	if c.RunningSystem == "" {
		return DefaultRunningSystem
	}
	return c.RunningSystem
}

// WorkspaceConfig is an Agentix workspace the daemon follows.
type WorkspaceConfig struct {
	// Path is the workspace directory (absolute).
	Path string `json:"path"`
	// Host names its nixosConfigurations entry (default: the node name).
	Host string `json:"host,omitempty"`
	// Attr is the toplevel flake attribute (default:
	// nixosConfigurations.<host>.config.system.build.toplevel).
	Attr string `json:"attr,omitempty"`
}

// Witness is a witness of this node's log.
type Witness struct {
	URL string `json:"url"`
	Key string `json:"key"` // note verifier key of its cosignatures
}

// Peer is another node's log that this node witnesses.
type Peer struct {
	Origin string `json:"origin"`
	Key    string `json:"key"` // note verifier key of its checkpoints
	URL    string `json:"url,omitempty"`
}

// ResolveDir returns the data directory: flag, else $AGENTIX_STORE_DIR, else
// $XDG_DATA_HOME/agentix-store, else ~/.local/share/agentix-store.
func ResolveDir(flag string) (string, error) {
	if flag != "" {
		return filepath.Abs(flag)
	}
	if d := os.Getenv("AGENTIX_STORE_DIR"); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "agentix-store"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find a data directory: set --dir or $AGENTIX_STORE_DIR: %w", err)
	}
	return filepath.Join(home, ".local", "share", "agentix-store"), nil
}

// InitOptions configure Init.
type InitOptions struct {
	// Name of the node; default: the host name.
	Name string
}

// InitResult lists what Init created and what it found already there.
type InitResult struct {
	Dir      string   `json:"dir"`
	Created  []string `json:"created"`
	Existing []string `json:"existing"`
}

var nameRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// SanitizeName makes s usable as a note key name and origin component.
func SanitizeName(s string) string {
	s = strings.Trim(nameRE.ReplaceAllString(s, "-"), "-")
	if s == "" {
		s = "node"
	}
	return s
}

// Init creates dir and every missing file of a node. It never overwrites an
// existing key, token or config.
func Init(dir string, o InitOptions) (*InitResult, error) {
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	res := &InitResult{Dir: dir}
	cfg, err := LoadConfig(dir)
	switch {
	case errors.Is(err, ErrNotInitialised):
		name := o.Name
		if name == "" {
			name, _ = os.Hostname()
		}
		name = SanitizeName(name)
		cfg = &Config{Name: name, Origin: "agentix-store/" + name, Listen: DefaultListen, Chunker: "size-262144"}
		b, _ := json.MarshalIndent(cfg, "", "  ")
		if err := writeNew(dir, ConfigFile, append(b, '\n'), 0o644, res); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		res.Existing = append(res.Existing, ConfigFile)
	}

	gens := []struct {
		priv, pub string
		gen       func() (priv, pub []byte, err error)
	}{
		{AttestKeyFile, AttestPubFile, func() ([]byte, []byte, error) { return generateAttestKey() }},
		{LogKeyFile, LogPubFile, func() ([]byte, []byte, error) { return noteKey(cfg.Origin) }},
		{WitnessKeyFile, WitnessPubFile, func() ([]byte, []byte, error) { return witnessKey(cfg.Name + "-witness") }},
		{NixKeyFile, NixPubFile, func() ([]byte, []byte, error) { return nixKey(cfg.Name + "-1") }},
	}
	for _, g := range gens {
		if exists(filepath.Join(dir, g.priv)) {
			res.Existing = append(res.Existing, g.priv)
			continue
		}
		priv, pub, err := g.gen()
		if err != nil {
			return nil, fmt.Errorf("generate %s: %w", g.priv, err)
		}
		if err := writeNew(dir, g.priv, priv, 0o600, res); err != nil {
			return nil, err
		}
		// The public half is derived data: rewrite it to match the key.
		if err := os.WriteFile(filepath.Join(dir, g.pub), pub, 0o644); err != nil {
			return nil, err
		}
		res.Created = append(res.Created, g.pub)
	}
	if exists(filepath.Join(dir, TokenFile)) {
		res.Existing = append(res.Existing, TokenFile)
	} else {
		tok := make([]byte, 32)
		if _, err := rand.Read(tok); err != nil {
			return nil, err
		}
		if err := writeNew(dir, TokenFile, []byte(hex.EncodeToString(tok)+"\n"), 0o600, res); err != nil {
			return nil, err
		}
	}
	// The trust policy starts as this node's own keys; operators add
	// approvers and witnesses to it, so an existing one is kept.
	pol, err := OwnTrustPolicy(dir, cfg)
	if err != nil {
		return nil, err
	}
	if err := writeNew(dir, TrustPolicyFile, pol, 0o644, res); err != nil {
		return nil, err
	}
	return res, nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// writeNew creates name in dir, failing if it exists (O_EXCL), so a race
// between two inits never overwrites a key.
func writeNew(dir, name string, data []byte, perm fs.FileMode, res *InitResult) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			res.Existing = append(res.Existing, name)
			return nil
		}
		return fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	res.Created = append(res.Created, name)
	return f.Close()
}

func noteKey(name string) ([]byte, []byte, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, nil, err
	}
	return []byte(skey + "\n"), []byte(vkey + "\n"), nil
}

// witnessKey makes a signed-note Ed25519 key whose public half is written as
// a C2SP tlog-cosignature (cosignature/v1, type 0x04) verifier key, the key
// form witness configurations name.
func witnessKey(name string) ([]byte, []byte, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, nil, err
	}
	cv, err := CosignatureVKey(vkey)
	if err != nil {
		return nil, nil, err
	}
	return []byte(skey + "\n"), []byte(cv + "\n"), nil
}

// CosignatureVKey turns an Ed25519 signed-note verifier key (type 0x01) into
// the cosignature/v1 verifier key (type 0x04) of the same key pair, per
// C2SP tlog-cosignature: same name and public key, algorithm byte 0x04, key
// hash recomputed over the new encoding.
func CosignatureVKey(vkey string) (string, error) {
	name, rest, _ := strings.Cut(vkey, "+")
	_, b64, _ := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) != 33 || (key[0] != 0x01 && key[0] != 0x04) {
		return "", fmt.Errorf("not an Ed25519 note verifier key: %q", vkey)
	}
	key[0] = 0x04
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	return fmt.Sprintf("%s+%08x+%s", name, binary.BigEndian.Uint32(h[:4]), base64.StdEncoding.EncodeToString(key)), nil
}

func nixKey(name string) ([]byte, []byte, error) {
	sk, pk, err := signature.GenerateKeypair(name, rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return []byte(sk.String() + "\n"), []byte(pk.String() + "\n"), nil
}

// LoadConfig reads dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotInitialised)
	}
	if err != nil {
		return nil, err
	}
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ConfigFile), err)
	}
	if c.Name == "" || c.Origin == "" {
		return nil, fmt.Errorf("%s: name and origin must be set", filepath.Join(dir, ConfigFile))
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Chunker == "" {
		c.Chunker = "size-262144"
	}
	return &c, nil
}

// ReadKey returns the trimmed contents of a key file.
func ReadKey(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("read key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// DaemonAddrFile holds the base URL of the daemon serving this data
// directory, written by serve while it runs (as Kubo's $IPFS_PATH/api).
const DaemonAddrFile = "daemon.addr"

// Daemon locates the daemon holding a data directory.
type Daemon struct {
	Base  string // e.g. http://127.0.0.1:7171
	Token string // bearer token for writes
}

// DaemonClient returns where the daemon of dir listens and its token.
func DaemonClient(dir string) (*Daemon, error) {
	b, err := os.ReadFile(filepath.Join(dir, DaemonAddrFile))
	if err != nil {
		return nil, fmt.Errorf("no daemon address: %w", err)
	}
	tok, err := ReadKey(dir, TokenFile)
	if err != nil {
		return nil, err
	}
	return &Daemon{Base: strings.TrimSpace(string(b)), Token: tok}, nil
}

// UpdateConfig applies fn to dir's config and writes it back atomically.
// A running daemon reads most of its config at start (restart it to
// apply); it follows changes to workspaces and runningSystem at once.
func UpdateConfig(dir string, fn func(*Config) error) (*Config, error) {
	c, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	if err := fn(c); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return c, writeFileAtomic(filepath.Join(dir, ConfigFile), append(b, '\n'), 0o644)
}
