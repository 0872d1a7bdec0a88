package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
)

// StateEnv names the environment variable that sets the state directory.
const StateEnv = "AGENTIX_VERIFY_STATE"

// ResolveStateDir returns the auditor state directory: flag when set, else
// $AGENTIX_VERIFY_STATE, else $XDG_STATE_HOME/agentix-verify, else
// ~/.local/state/agentix-verify.
func ResolveStateDir(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if d := os.Getenv(StateEnv); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "agentix-verify"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("auditor state directory: %w (set --state or $%s)", err, StateEnv)
	}
	return filepath.Join(home, ".local", "state", "agentix-verify"), nil
}

// Accepted is one checkpoint this auditor accepted.
type Accepted struct {
	Size     uint64    `json:"size"`
	Root     []byte    `json:"root"` // base64 in JSON
	Note     string    `json:"note"` // the signed checkpoint as served
	Accepted time.Time `json:"accepted"`
}

// LogState is what the auditor remembers of one log: every checkpoint it
// accepted, so that a split view at any accepted size is caught, and the
// largest of them, which later checkpoints must be consistent with.
type LogState struct {
	Origin   string     `json:"origin"`
	Latest   *Accepted  `json:"latest,omitempty"`
	Accepted []Accepted `json:"accepted"`
	// Genesis is the configuration chain genesis (NAR hash) accepted per
	// workspace, trusted on first use when the policy pins none.
	Genesis map[string]string `json:"genesis,omitempty"`
	// Proven are the running-config/v2 links proven so far, by attestation
	// id: a re-audit replays only the links after the latest of them.
	Proven map[string]ProvenLink `json:"provenConfigs,omitempty"`
}

// At returns the accepted checkpoint of the given size, if any.
func (ls *LogState) At(size uint64) (Accepted, bool) {
	for _, a := range ls.Accepted {
		if a.Size == size {
			return a, true
		}
	}
	return Accepted{}, false
}

// Accept records a checkpoint (once per size) and moves Latest forward.
func (ls *LogState) Accept(a Accepted) {
	if _, ok := ls.At(a.Size); !ok {
		ls.Accepted = append(ls.Accepted, a)
	}
	if ls.Latest == nil || a.Size > ls.Latest.Size {
		ls.Latest = &a
	}
}

// State is the auditor's state directory: one JSON file per log origin
// under logs/.
type State struct{ Dir string }

// OpenState creates dir if needed.
func OpenState(dir string) (*State, error) {
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return nil, fmt.Errorf("auditor state: %w", err)
	}
	return &State{Dir: dir}, nil
}

func (s *State) path(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, origin)
	if len(name) > 64 {
		name = name[:64]
	}
	return filepath.Join(s.Dir, "logs", name+"-"+hex.EncodeToString(sum[:6])+".json")
}

// Load returns the remembered state of a log (empty when none).
func (s *State) Load(origin string) (*LogState, error) {
	b, err := os.ReadFile(s.path(origin))
	if errors.Is(err, fs.ErrNotExist) {
		return &LogState{Origin: origin, Accepted: []Accepted{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auditor state for %s: %w", origin, err)
	}
	// Read strictly: exact member names, and a repeated member (two
	// "latest") or invalid UTF-8 refused, naming the member.
	var ls LogState
	if err := jsonv2.Unmarshal(b, &ls); err != nil {
		return nil, fmt.Errorf("auditor state for %s (%s): %w", origin, s.path(origin), err)
	}
	if ls.Origin != origin {
		return nil, fmt.Errorf("auditor state %s is for origin %q, not %q", s.path(origin), ls.Origin, origin)
	}
	return &ls, nil
}

// Save writes the state atomically (temp file, fsync, rename).
func (s *State) Save(ls *LogState) error {
	b, err := json.MarshalIndent(ls, "", "  ")
	if err != nil {
		return err
	}
	p := s.path(ls.Origin)
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("save auditor state: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("save auditor state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save auditor state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save auditor state: %w", err)
	}
	return os.Rename(f.Name(), p)
}
