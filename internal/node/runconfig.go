package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/chain"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/schemas"
	"github.com/agentix/agentix-store/store"
)

// GenesisDir holds one recorded genesis source per workspace.
const GenesisDir = "genesis"

// Genesis is the recorded genesis source S0 of a workspace's chain.
type Genesis struct {
	Workspace string           `json:"workspace"`
	Source    attest.SourceRef `json:"source"`
	// Since is the node's log size when the genesis was recorded: applies
	// logged before it are part of the genesis, not links of the chain.
	Since    uint64    `json:"since"`
	Recorded time.Time `json:"recorded"`
}

// AttestOptions configure AttestRunning.
type AttestOptions struct {
	// Workspace is the Agentix workspace (a git-repo flake) the system was
	// built from; empty: the configuration is unproven.
	Workspace string
	// Attr is the toplevel flake attribute (default:
	// chain.DefaultAttr(Host)).
	Attr string
	// Host names the nixosConfigurations entry (default: the node name).
	Host string
	// Generation is the NixOS system generation, if known.
	Generation int64
	// Unproven, when set, is why the configuration cannot be computed; the
	// node still attests the closure.
	Unproven string
	// Verified, when it is the result of closure.Verify of the same
	// closure, spares verifying it again.
	Verified *closure.VerifyResult
}

// AttestResult is what AttestRunning published.
type AttestResult struct {
	attest.Published
	// Link is the configuration link attested, nil when unproven.
	Link *attest.ConfigurationLink `json:"link,omitempty"`
	// Unproven is why the configuration is unproven, when it is.
	Unproven string `json:"unproven,omitempty"`
	// Warnings are what the node noticed and attested anyway (drift).
	Warnings []string `json:"warnings,omitempty"`
}

// narStore keeps source NARs as pinned UnixFS files.
type narStore struct{ n *Node }

func (s narStore) PutNAR(ctx context.Context, nar []byte) (string, error) {
	c, err := s.n.Store.Add(ctx, bytes.NewReader(nar), store.AddOptions{Chunker: "buzhash", Pin: true})
	if err != nil {
		return "", fmt.Errorf("store source NAR: %w", err)
	}
	if err := s.n.Store.Pin(ctx, c, store.PinOptions{Name: "source " + chain.SRI(nar)}); err != nil {
		return "", err
	}
	return c.String(), nil
}

func (s narStore) GetNAR(ctx context.Context, id string) ([]byte, error) {
	c, err := cid.Decode(id)
	if err != nil {
		return nil, err
	}
	f, err := s.n.Store.Cat(ctx, c)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func genesisPath(dir, ws string) string {
	sum := sha256.Sum256([]byte(ws))
	return filepath.Join(dir, GenesisDir, hex.EncodeToString(sum[:8])+".json")
}

// LoadGenesis returns the recorded genesis of workspace ws, or nil.
func (n *Node) LoadGenesis(ws string) (*Genesis, error) {
	b, err := os.ReadFile(genesisPath(n.Dir, ws))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var g Genesis
	if err := json.Unmarshal(b, &g); err != nil || g.Workspace != ws {
		return nil, fmt.Errorf("genesis record %s of %s is corrupt: %v", genesisPath(n.Dir, ws), ws, err)
	}
	return &g, nil
}

// RecordGenesis records the workspace's current source as its genesis S0:
// the source NAR is stored and pinned, then the record is written. It
// refuses to replace a recorded genesis (ErrGenesisRecorded).
func (n *Node) RecordGenesis(ctx context.Context, ws string) (*Genesis, error) {
	ws, err := filepath.Abs(ws)
	if err != nil {
		return nil, err
	}
	if g, err := n.LoadGenesis(ws); err != nil || g != nil {
		if g != nil {
			return g, fmt.Errorf("%w: %s has genesis %s, recorded %s", ErrGenesisRecorded, ws, g.Source.NarHash, g.Recorded.Format(time.RFC3339))
		}
		return nil, err
	}
	src, err := chain.FlakeSource(ctx, ws)
	if err != nil {
		return nil, err
	}
	var nar bytes.Buffer
	if err := chain.DumpNAR(&nar, src.StorePath); err != nil {
		return nil, err
	}
	id, err := narStore{n}.PutNAR(ctx, nar.Bytes())
	if err != nil {
		return nil, err
	}
	g := &Genesis{Workspace: ws, Source: attest.SourceRef{NarHash: src.NarHash, Rev: src.Rev, NAR: id}, Recorded: time.Now().UTC()}
	if n.Log != nil {
		g.Since = n.Log.Size()
	}
	b, _ := json.MarshalIndent(g, "", "  ")
	if err := writeFileAtomic(genesisPath(n.Dir, ws), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return g, nil
}

// ErrGenesisRecorded: the workspace already has a recorded genesis.
var ErrGenesisRecorded = errors.New("genesis already recorded")

// AttestRunning publishes a running-config/v2 for the stored closure c.
// With a workspace it computes the configuration link (chain.BuildLink):
// the previous link of the workspace, or its genesis (recorded now when
// none is), and the applies the node ingested since then, in log order; it
// refuses when the workspace does not evaluate to the closure's root. With
// no workspace, or o.Unproven, it attests the closure with the reason the
// configuration is unproven.
func (n *Node) AttestRunning(ctx context.Context, c cid.Cid, signer *attest.Signer, o AttestOptions) (*AttestResult, error) {
	vr := o.Verified
	if vr == nil || !vr.Closure.Equals(c) {
		var err error
		if vr, err = closure.Verify(ctx, n.Store, c); err != nil {
			return nil, err
		}
	}
	pred := attest.RunningConfigV2Predicate{Closure: attest.ClosureRef{CID: c.String(), RootStorePath: vr.Root}, Generation: o.Generation, Time: time.Now().UTC().Format(time.RFC3339)}
	for _, e := range vr.Entries {
		if e.Path == vr.Root {
			pred.Closure.NarHash = e.NarHashString()
		}
	}
	res := &AttestResult{}
	switch {
	case o.Unproven != "":
		pred.Unproven = o.Unproven
	case o.Workspace == "":
		pred.Unproven = "no workspace is configured for this system"
	default:
		link, warnings, err := n.buildLink(ctx, vr.Root, o)
		if err != nil {
			return nil, err
		}
		pred.Configuration, res.Warnings = link, warnings
	}
	res.Link, res.Unproven = pred.Configuration, pred.Unproven
	blk, err := n.Store.Blockstore().Get(ctx, c)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(blk.RawData())
	_, payload, err := attest.NewStatement(attest.PredicateRunningConfigV2, []attest.ResourceDescriptor{attest.Subject(c, sum[:], vr.Root)}, pred)
	if err != nil {
		return nil, fmt.Errorf("running-config statement for %s: %w", c, err)
	}
	env, err := attest.SignEnvelope(ctx, attest.PayloadType, payload, signer)
	if err != nil {
		return nil, err
	}
	b, err := attest.MarshalEnvelope(env)
	if err != nil {
		return nil, err
	}
	if res.Published, err = n.Publisher().Publish(ctx, b); err != nil {
		return nil, err
	}
	return res, nil
}

func (n *Node) buildLink(ctx context.Context, root string, o AttestOptions) (*attest.ConfigurationLink, []string, error) {
	ws, err := filepath.Abs(o.Workspace)
	if err != nil {
		return nil, nil, err
	}
	attr := o.Attr
	if attr == "" {
		host := o.Host
		if host == "" {
			host = n.Config.Name
		}
		attr = chain.DefaultAttr(host)
	}
	in := chain.LinkInput{Workspace: ws, Attr: attr, Root: root}
	links, err := n.links(ctx, ws)
	if err != nil {
		return nil, nil, err
	}
	since := uint64(0)
	if len(links) > 0 {
		last := links[len(links)-1]
		in.Prev = &last.Prev
		since = last.index + 1
		for _, l := range links[:len(links)-1] {
			in.Earlier = append(in.Earlier, l.Prev)
		}
	} else {
		g, err := n.LoadGenesis(ws)
		if err != nil {
			return nil, nil, err
		}
		if g == nil {
			if g, err = n.RecordGenesis(ctx, ws); err != nil {
				return nil, nil, err
			}
		}
		in.Genesis = &g.Source
		since = g.Since
	}
	if in.Applies, err = n.appliesSince(ctx, ws, since); err != nil {
		return nil, nil, err
	}
	return chain.BuildLink(ctx, narStore{n}, in)
}

type indexedLink struct {
	chain.Prev
	index uint64
}

// links returns the running-config/v2 links of workspace ws, in log order.
func (n *Node) links(ctx context.Context, ws string) ([]indexedLink, error) {
	recs, err := n.Attest.Search(attest.Query{PredicateType: attest.PredicateRunningConfigV2})
	if err != nil {
		return nil, err
	}
	var out []indexedLink
	for _, r := range recs {
		var p attest.RunningConfigV2Predicate
		if err := n.Predicate(ctx, r.ID, &p); err != nil {
			return nil, err
		}
		if p.Configuration != nil && p.Configuration.Workspace == ws {
			out = append(out, indexedLink{Prev: chain.Prev{ID: r.ID, Link: *p.Configuration}, index: r.LogIndex})
		}
	}
	return out, nil
}

// appliesSince returns the apply/v1 attestations of workspace ws at log
// index since or later, in log order, with their patch bytes.
func (n *Node) appliesSince(ctx context.Context, ws string, since uint64) ([]chain.Apply, error) {
	recs, err := n.Attest.Search(attest.Query{PredicateType: attest.PredicateApply})
	if err != nil {
		return nil, err
	}
	var out []chain.Apply
	for _, r := range recs {
		if r.LogIndex < since {
			continue
		}
		var ap attest.ApplyPredicate
		if err := n.Predicate(ctx, r.ID, &ap); err != nil {
			return nil, err
		}
		if ap.Workspace != ws {
			continue
		}
		b, err := n.PatchBytes(ctx, ap.Patch)
		if err != nil {
			return nil, fmt.Errorf("apply %s: %w", r.ID, err)
		}
		out = append(out, chain.Apply{ID: r.ID, Patch: b})
	}
	return out, nil
}

// Predicate decodes the predicate of the stored attestation id into v.
func (n *Node) Predicate(ctx context.Context, id string, v any) error {
	c, err := cid.Decode(id)
	if err != nil {
		return err
	}
	blk, err := n.Store.Blockstore().Get(ctx, c)
	if err != nil {
		return fmt.Errorf("attestation %s: %w", id, err)
	}
	env, err := attest.ParseEnvelope(blk.RawData())
	if err != nil {
		return fmt.Errorf("attestation %s: %w", id, err)
	}
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return fmt.Errorf("attestation %s: payload: %w", id, err)
	}
	st, err := attest.ParseStatement(payload)
	if err != nil {
		return fmt.Errorf("attestation %s: %w", id, err)
	}
	return st.DecodePredicate(v)
}

// PatchBytes reads the bytes of the stored Patch record ref names, checking
// their sha256.
func (n *Node) PatchBytes(ctx context.Context, ref attest.PatchRef) ([]byte, error) {
	c, err := cid.Decode(ref.CID)
	if err != nil {
		return nil, err
	}
	blk, err := n.Store.Blockstore().Get(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("patch record %s: %w", c, err)
	}
	var p schemas.Patch
	if err := schemas.Decode(blk.RawData(), &p); err != nil {
		return nil, fmt.Errorf("patch record %s: %w", c, err)
	}
	f, err := n.Store.Cat(ctx, p.Bytes)
	if err != nil {
		return nil, fmt.Errorf("patch bytes %s: %w", p.Bytes, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("patch bytes %s: %w", p.Bytes, err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != ref.SHA256 {
		return nil, fmt.Errorf("patch bytes %s hash to %x, the attestation says %s", p.Bytes, sum, ref.SHA256)
	}
	return b, nil
}

// writeFileAtomic writes b to path through a synced temporary file renamed
// into place, then syncs the directory, so that path holds either its old
// content or all of b after a crash.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
