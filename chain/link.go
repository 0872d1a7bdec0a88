package chain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentix/agentix-store/attest"
)

// ErrNotRunning is returned by BuildLink when the workspace's source does
// not evaluate to the closure the node runs: the node refuses to attest a
// configuration it does not run.
var ErrNotRunning = errors.New("the configuration does not evaluate to the running closure")

// NARStore keeps source NARs for a node: PutNAR stores one and makes it
// reachable from a GC root before it returns its id; GetNAR reads one back.
type NARStore interface {
	PutNAR(ctx context.Context, nar []byte) (id string, err error)
	GetNAR(ctx context.Context, id string) ([]byte, error)
}

// Prev is the previous link of a workspace's chain: the running-config/v2
// attestation id and its link.
type Prev struct {
	ID   string
	Link attest.ConfigurationLink
}

// Apply is one apply/v1 attestation since the previous link, with the
// bytes of the patch it applied.
type Apply struct {
	ID    string
	Patch []byte
}

// LinkInput is what BuildLink needs to know.
type LinkInput struct {
	Workspace string // a git-repo flake
	Attr      string // the toplevel attribute
	// Root is the root store path of the closure the node runs.
	Root string
	// Prev is the previous link of the workspace, or nil for the first.
	Prev *Prev
	// Genesis is the recorded genesis source, used when Prev is nil (nil:
	// the workspace's current source is the genesis).
	Genesis *attest.SourceRef
	// Applies are the applies since Prev (or since the genesis), in order.
	Applies []Apply
	// Earlier are the workspace's links before Prev. When no apply came
	// since Prev and the source is no longer Prev's but an earlier link's,
	// the node rolled back to that link, and the new link says so.
	Earlier []Prev
}

// BuildLink computes the configuration link of the node's running system
// from its workspace with real Nix: the source state (git+file: flake
// source, its NAR stored through ns), the toplevel evaluated from it, which
// must be in.Root (else ErrNotRunning), and what it extends (with
// RollbackTo when the source returned to an earlier link's). When the
// source differs from the state it extends plus the applies' patches, the
// link still describes what the node runs, lists the differing files in
// Drift, and each is returned as a warning: the node never hides its state.
func BuildLink(ctx context.Context, ns NARStore, in LinkInput) (*attest.ConfigurationLink, []string, error) {
	src, err := FlakeSource(ctx, in.Workspace)
	if err != nil {
		return nil, nil, err
	}
	// FlakeSource has locked the flake: evaluate it without asking Nix
	// for its metadata again.
	top, err := evaluate(ctx, "git+file://"+in.Workspace, in.Attr)
	if err != nil {
		return nil, nil, err
	}
	if top.OutPath != in.Root {
		return nil, nil, fmt.Errorf("%w: %s of %s evaluates to %s, the closure's root is %s", ErrNotRunning, in.Attr, in.Workspace, top.OutPath, in.Root)
	}
	var nar bytes.Buffer
	if err := DumpNAR(&nar, src.StorePath); err != nil {
		return nil, nil, fmt.Errorf("source NAR of %s: %w", in.Workspace, err)
	}
	if h := SRI(nar.Bytes()); h != src.NarHash {
		return nil, nil, fmt.Errorf("source NAR of %s hashes to %s, Nix says %s", in.Workspace, h, src.NarHash)
	}
	id, err := ns.PutNAR(ctx, nar.Bytes())
	if err != nil {
		return nil, nil, err
	}
	link := &attest.ConfigurationLink{
		Workspace: in.Workspace,
		Source:    attest.SourceRef{NarHash: src.NarHash, Rev: src.Rev, NAR: id},
		Applies:   []string{},
		Toplevel:  attest.ToplevelRef{Attr: in.Attr, DrvPath: top.DrvPath, OutPath: top.OutPath},
	}
	var base attest.SourceRef
	switch {
	case in.Prev != nil:
		link.Extends.RunningConfig = in.Prev.ID
		base = in.Prev.Link.Source
	case in.Genesis != nil:
		g := *in.Genesis
		link.Extends.Genesis = &g
		base = g
	default:
		g := link.Source
		link.Extends.Genesis = &g
		return link, nil, nil
	}
	if in.Prev != nil && len(in.Applies) == 0 && src.NarHash != in.Prev.Link.Source.NarHash {
		for i := len(in.Earlier) - 1; i >= 0; i-- {
			if e := in.Earlier[i]; e.Link.Source.NarHash == src.NarHash {
				link.Extends.RollbackTo = e.ID
				base = e.Link.Source
				break
			}
		}
	}
	for _, a := range in.Applies {
		link.Applies = append(link.Applies, a.ID)
	}
	drift, err := Drift(ctx, ns, base, in.Applies, nar.Bytes())
	if err != nil {
		return nil, nil, err
	}
	link.Drift = drift
	var warnings []string
	for _, f := range drift {
		warnings = append(warnings, fmt.Sprintf("%s: %s differs from the state it extends plus the approved patches", in.Workspace, f))
	}
	return link, warnings, nil
}

// Drift rebuilds base plus the applies' patches and returns the files in
// which the source NAR cur differs from it (none when they agree). A patch
// that does not apply to base is drift too: its files are listed.
func Drift(ctx context.Context, ns NARStore, base attest.SourceRef, applies []Apply, cur []byte) ([]string, error) {
	if len(applies) == 0 && SRI(cur) == base.NarHash {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "agentix-drift-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	b, err := ns.GetNAR(ctx, base.NAR)
	if err != nil {
		return nil, fmt.Errorf("source NAR %s: %w", base.NAR, err)
	}
	want := filepath.Join(dir, "want")
	if err := UnpackNAR(bytes.NewReader(b), want); err != nil {
		return nil, fmt.Errorf("source NAR %s: %w", base.NAR, err)
	}
	root, err := os.OpenRoot(want)
	if err != nil {
		return nil, err
	}
	var failed []string
	for _, a := range applies {
		if err := ApplyPatch(root, a.Patch); err != nil {
			var pe *PatchError
			if errors.As(err, &pe) {
				failed = append(failed, pe.File)
			} else {
				failed = append(failed, "apply "+a.ID)
			}
		}
	}
	root.Close()
	if h, err := NarHash(want); err == nil && h == SRI(cur) && len(failed) == 0 {
		return nil, nil
	}
	got := filepath.Join(dir, "got")
	if err := UnpackNAR(bytes.NewReader(cur), got); err != nil {
		return nil, err
	}
	files, err := DiffTrees(want, got)
	if err != nil {
		return nil, err
	}
	return append(failed, files...), nil
}
