package verify

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/audit"
	"github.com/agentix/agentix-store/chain"
	"github.com/agentix/agentix-store/closure"
)

// Errors of the configuration chain. Each names the link (the
// running-config/v2 attestation) and what broke. Test with errors.Is.
var (
	// ErrPatchDoesNotApply: an apply's patch does not apply to the state
	// it extends (which patch, which file).
	ErrPatchDoesNotApply = errors.New("patch does not apply")
	// ErrSourceMismatch: the attested source is not the state it extends
	// plus the applies' patches (which files differ: a hand edit outside
	// any approved patch).
	ErrSourceMismatch = errors.New("source is not the previous state plus the approved patches")
	// ErrToplevelMismatch: the source evaluates to another toplevel than
	// the closure the node runs.
	ErrToplevelMismatch = errors.New("source does not evaluate to the running closure")
	// ErrChainGap: a running-config does not extend the previous one of
	// its workspace, or names a link that is not there.
	ErrChainGap = errors.New("running-config does not extend the previous one")
	// ErrUnapprovedApply: an apply in the chain fails the safety boundary
	// rules (no sandboxed proposal, or too few approvals).
	ErrUnapprovedApply = errors.New("apply in the configuration chain is not approved")
	// ErrSkippedApply: an apply of the workspace logged between two links
	// is in neither.
	ErrSkippedApply = errors.New("apply logged but left out of the configuration chain")
	// ErrApplyOrder: a link lists its applies in another order than the
	// log has them.
	ErrApplyOrder = errors.New("applies listed out of the order they were applied")
	// ErrGenesisMismatch: the chain starts from another genesis than the
	// trust policy pins or this auditor accepted before.
	ErrGenesisMismatch = errors.New("genesis source differs from the trusted one")
	// ErrNotReproduced: with --rebuild, a path this auditor built has
	// another NAR hash than the node's closure says.
	ErrNotReproduced = errors.New("rebuilt paths differ from the node's")
	// ErrConfigUnproven: the node attests what it runs but not the
	// configuration it came from (running-config/v1, or a v2 that says why
	// not). It is an ErrUnavailable: nothing was found false, but the
	// configuration is not proven.
	ErrConfigUnproven = fmt.Errorf("configuration not proven: %w", ErrUnavailable)
)

func init() {
	reasons = append([]struct {
		err  error
		code string
	}{
		{ErrConfigUnproven, "configuration-unproven"},
		{ErrPatchDoesNotApply, "patch-does-not-apply"},
		{ErrSourceMismatch, "source-mismatch"},
		{ErrToplevelMismatch, "toplevel-mismatch"},
		{ErrChainGap, "chain-gap"},
		{ErrUnapprovedApply, "unapproved-apply"},
		{ErrSkippedApply, "skipped-apply"},
		{ErrApplyOrder, "apply-order"},
		{ErrGenesisMismatch, "genesis-mismatch"},
		{ErrNotReproduced, "not-reproduced"},
	}, reasons...)
}

// maxSourceNAR bounds a configuration source's NAR as the auditor fetches it.
const maxSourceNAR = 256 << 20

// link is one running-config/v2 of the chain being replayed.
type link struct {
	id    string
	index uint64
	pred  attest.RunningConfigV2Predicate
}

// ProvenLink is what the auditor remembers of a running-config/v2 whose
// link it proved: re-auditing starts from the latest of them.
type ProvenLink struct {
	Workspace  string `json:"workspace"`
	NarHash    string `json:"narHash"`
	NAR        string `json:"nar"`
	OutPath    string `json:"outPath"`
	Generation int64  `json:"generation,omitempty"`
}

// configChain replays the configuration chain that ends at the
// running-config/v2 latest: it walks back through Extends to the genesis
// (or to a link this auditor proved before), then forward, rebuilding each
// source state from the previous one and the applies' patches, comparing
// its NAR hash with the attested one and evaluating it with this auditor's
// Nix. It reports each broken link with its own reason.
func (na *nodeAudit) configChain(latest link, ls *LogState) {
	cr := &chainReplay{na: na, ls: ls, ws: latest.pred.Configuration.Workspace}
	rcs := cr.collect()
	links, base, ok := cr.walkBack(latest)
	if !ok || !cr.noSkippedLinks(rcs, links, latest) {
		return
	}
	dir, err := os.MkdirTemp(na.o.TempDir, "agentix-verify-source-")
	if err != nil {
		na.r.Fail("configuration", nil, latest.id, unavailable("%v", err))
		return
	}
	defer os.RemoveAll(dir)
	cr.dir, cr.tree = dir, filepath.Join(dir, "tree")
	prevIndex, ok := cr.start(links[0], base)
	if !ok {
		return
	}
	for _, l := range links {
		if !cr.replay(l, prevIndex) {
			return
		}
		prevIndex = l.index
	}
	na.r.Details["configLinksReplayed"] = len(links)
	if na.o.Rebuild {
		na.rebuild(latest, cr.tree)
	}
	na.r.Prove("configuration of %s proven: the running closure is the evaluation of the genesis plus %d link(s) of approved patches, applied in order", cr.ws, len(links))
}

// chainReplay is the state of one configChain: the workspace, the applies
// logged for it, the links of the chain, and the tree being rebuilt.
type chainReplay struct {
	na      *nodeAudit
	ls      *LogState
	ws      string
	applies []attest.Record   // apply/v1 attestations of the log, in log order
	wsOf    map[string]string // apply id → its workspace
	inChain map[string]bool   // link ids of the chain being replayed
	dir     string            // scratch directory
	tree    string            // the source state being rebuilt
}

// collect lists the log's running-config/v2 (returned) and apply/v1
// attestations, in log order, and the workspace of each apply.
func (cr *chainReplay) collect() (rcs []attest.Record) {
	for _, rec := range cr.na.sorted {
		if rec.LogIndex >= cr.na.size {
			continue
		}
		switch rec.PredicateType {
		case attest.PredicateRunningConfigV2:
			rcs = append(rcs, rec)
		case attest.PredicateApply:
			cr.applies = append(cr.applies, rec)
		}
	}
	cr.wsOf = map[string]string{}
	for _, rec := range cr.applies {
		if res, ok := cr.na.attestation(rec.ID, attest.PredicateApply); ok {
			var ap attest.ApplyPredicate
			if res.Statement.DecodePredicate(&ap) == nil {
				cr.wsOf[rec.ID] = ap.Workspace
			}
		}
	}
	return rcs
}

// walkBack follows Extends from latest to the genesis, or to the latest
// link this auditor proved before (base), and returns the links to replay,
// oldest first.
func (cr *chainReplay) walkBack(latest link) (links []link, base *ProvenLink, ok bool) {
	r := cr.na.r
	links = []link{latest}
	for cur := latest; ; {
		if p, proven := cr.ls.Proven[cur.id]; proven && cur.id != latest.id {
			base = &p
			links = links[:len(links)-1]
			break
		}
		ext := cur.pred.Configuration.Extends
		if ext.Genesis != nil {
			break
		}
		prev, found := cr.na.v2(ext.RunningConfig)
		if !found {
			r.Fail("configuration", ptr(cur.index), cur.id, errf(ErrChainGap, "extends running-config %s, which the node does not serve as a verified running-config/v2", ext.RunningConfig))
			return nil, nil, false
		}
		if prev.index >= cur.index || prev.pred.Configuration == nil || prev.pred.Configuration.Workspace != cr.ws {
			r.Fail("configuration", ptr(cur.index), cur.id, errf(ErrChainGap, "extends %s, which is not an earlier link of workspace %s", prev.id, cr.ws))
			return nil, nil, false
		}
		links = append(links, prev)
		cur = prev
	}
	slices.Reverse(links)
	cr.inChain = map[string]bool{}
	for _, l := range links {
		cr.inChain[l.id] = true
	}
	return links, base, true
}

// noSkippedLinks checks that every running-config/v2 of the workspace
// logged between the first link and the latest is in the chain.
func (cr *chainReplay) noSkippedLinks(rcs []attest.Record, links []link, latest link) bool {
	for _, rec := range rcs {
		if cr.inChain[rec.ID] || rec.LogIndex < links[0].index || rec.LogIndex > latest.index {
			continue
		}
		if l, ok := cr.na.v2(rec.ID); ok && l.pred.Configuration != nil && l.pred.Configuration.Workspace == cr.ws {
			cr.na.r.Fail("configuration", ptr(rec.LogIndex), rec.ID, errf(ErrChainGap, "running-config %s of workspace %s is logged between links of the chain ending at %s, which does not extend it", rec.ID, cr.ws, latest.id))
			return false
		}
	}
	return true
}

// start loads the state the first link extends into the tree: the source
// of the link proved before (base), or the genesis, checked against the
// policy or this auditor's memory. It returns the log index the first
// link's applies come after.
func (cr *chainReplay) start(first link, base *ProvenLink) (prevIndex uint64, ok bool) {
	if base != nil {
		if !cr.na.loadSource(first, "previously proven source", attest.SourceRef{NarHash: base.NarHash, NAR: base.NAR}, cr.tree) {
			return 0, false
		}
		if p, found := cr.na.v2(first.pred.Configuration.Extends.RunningConfig); found {
			prevIndex = p.index
		}
		return prevIndex, true
	}
	g := first.pred.Configuration.Extends.Genesis
	return 0, cr.na.genesis(first, *g, cr.ls) && cr.na.loadSource(first, "genesis", *g, cr.tree)
}

// replay rebuilds link l's state from the tree (the previous state): its
// applies must be the workspace's applies logged since prevIndex, in log
// order; a rollback reloads the earlier state; the patches apply; the tree
// hashes to the attested source and evaluates to the running closure. A
// proven link is remembered.
func (cr *chainReplay) replay(l link, prevIndex uint64) bool {
	na, c := cr.na, l.pred.Configuration
	var want []string
	for _, rec := range cr.applies {
		if rec.LogIndex > prevIndex && rec.LogIndex < l.index && cr.wsOf[rec.ID] == cr.ws {
			want = append(want, rec.ID)
		}
	}
	if !na.appliesInOrder(l, want) {
		return false
	}
	if c.Extends.RollbackTo != "" && !cr.rollback(l) {
		return false
	}
	for _, id := range c.Applies {
		if !na.applyPatch(l, id, cr.tree) {
			return false
		}
	}
	if !na.sameSource(l, cr.tree, cr.dir) || !na.evaluates(l, cr.tree) {
		return false
	}
	na.r.Prove("configuration link %s (generation %d): source %s is its predecessor plus %d approved patch(es) and evaluates to %s", l.id, l.pred.Generation, c.Source.NarHash, len(c.Applies), c.Toplevel.OutPath)
	if cr.ls.Proven == nil {
		cr.ls.Proven = map[string]ProvenLink{}
	}
	cr.ls.Proven[l.id] = ProvenLink{Workspace: cr.ws, NarHash: c.Source.NarHash, NAR: c.Source.NAR, OutPath: c.Toplevel.OutPath, Generation: l.pred.Generation}
	return true
}

// rollback reloads the tree with the state of the earlier link that l
// rolls back to, which must be of this chain (or proven before) and come
// with no applies.
func (cr *chainReplay) rollback(l link) bool {
	na, c, rb := cr.na, l.pred.Configuration, l.pred.Configuration.Extends.RollbackTo
	to, ok := na.v2(rb)
	_, proven := cr.ls.Proven[rb]
	if !ok || !(cr.inChain[rb] || proven) || to.index >= l.index || to.pred.Configuration == nil || to.pred.Configuration.Workspace != cr.ws {
		na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrChainGap, "rolls back to %s, which is not an earlier link of this chain", rb))
		return false
	}
	if len(c.Applies) > 0 {
		na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrChainGap, "a rollback to %s lists %d applies", rb, len(c.Applies)))
		return false
	}
	os.RemoveAll(cr.tree)
	if !na.loadSource(l, "rollback target", to.pred.Configuration.Source, cr.tree) {
		return false
	}
	na.r.Prove("running-config %s is a rollback to %s (generation %d)", l.id, rb, to.pred.Generation)
	return true
}

// v2 fetches and verifies a running-config/v2 by id.
func (na *nodeAudit) v2(id string) (link, bool) {
	rec, ok := na.recs[id]
	if !ok {
		return link{}, false
	}
	res, ok := na.attestation(id, attest.PredicateRunningConfigV2)
	if !ok {
		return link{}, false
	}
	var p attest.RunningConfigV2Predicate
	if err := res.Statement.DecodePredicate(&p); err != nil {
		na.r.Fail("running-config", ptr(rec.LogIndex), id, err)
		return link{}, false
	}
	return link{id: id, index: rec.LogIndex, pred: p}, true
}

// genesis checks the chain's genesis against the trust policy's pins, or
// against the genesis this auditor accepted before for the workspace
// (trust on first use), and remembers it.
func (na *nodeAudit) genesis(l link, g attest.SourceRef, ls *LogState) bool {
	ws := l.pred.Configuration.Workspace
	if pins := na.p.Configuration.Genesis; len(pins) > 0 {
		if !slices.Contains(pins, g.NarHash) {
			na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrGenesisMismatch, "genesis %s of %s is not one the trust policy pins %v", g.NarHash, ws, pins))
			return false
		}
		na.r.Prove("genesis %s of %s is pinned by the trust policy", g.NarHash, ws)
	} else if old, ok := ls.Genesis[ws]; ok && old != g.NarHash {
		na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrGenesisMismatch, "genesis %s of %s, but this auditor accepted genesis %s before", g.NarHash, ws, old))
		return false
	} else if !ok {
		na.r.Prove("first genesis of %s seen by this auditor: %s (trust on first use)", ws, g.NarHash)
	}
	if ls.Genesis == nil {
		ls.Genesis = map[string]string{}
	}
	ls.Genesis[ws] = g.NarHash
	return true
}

// sourceNAR fetches a source state's NAR and checks it hashes to its
// NarHash.
func (na *nodeAudit) sourceNAR(l link, what string, s attest.SourceRef) ([]byte, bool) {
	fail := func(err error) { na.r.Fail("configuration", ptr(l.index), l.id, err) }
	c, err := cid.Decode(s.NAR)
	if err != nil {
		fail(fmt.Errorf("%w: %s NAR cid: %v", attest.ErrSchema, what, err))
		return nil, false
	}
	sum, err := chain.ParseSRI(s.NarHash)
	if err != nil {
		fail(fmt.Errorf("%w: %s narHash: %v", attest.ErrSchema, what, err))
		return nil, false
	}
	carBytes, err := na.get("/ipfs/" + c.String() + "?format=car")
	if err != nil {
		fail(err)
		return nil, false
	}
	if err := checkCARBlocks(carBytes); err != nil {
		fail(err)
		return nil, false
	}
	b, err := audit.FileFromCAR(carBytes, c, sum, maxSourceNAR)
	if err != nil {
		if errors.Is(err, audit.ErrNotInCAR) {
			fail(unavailable("%s NAR %s: %v", what, c, err))
		} else {
			fail(errf(ErrSourceMismatch, "%s NAR %s does not hash to %s: %v", what, c, s.NarHash, err))
		}
		return nil, false
	}
	return b, true
}

// loadSource unpacks a fetched source state into tree.
func (na *nodeAudit) loadSource(l link, what string, s attest.SourceRef, tree string) bool {
	b, ok := na.sourceNAR(l, what, s)
	if !ok {
		return false
	}
	if err := chain.UnpackNAR(bytes.NewReader(b), tree); err != nil {
		na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrSourceMismatch, "%s NAR %s: %v", what, s.NAR, err))
		return false
	}
	return true
}

// appliesInOrder checks a link lists exactly the workspace's applies logged
// since the previous link, in log order.
func (na *nodeAudit) appliesInOrder(l link, logged []string) bool {
	got := l.pred.Configuration.Applies
	if slices.Equal(got, logged) {
		return true
	}
	set := map[string]bool{}
	for _, id := range got {
		set[id] = true
	}
	for _, id := range logged {
		if !set[id] {
			na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrSkippedApply, "apply %s (at log entry %d) was logged for %s since the previous link, but this link leaves it out", id, na.recs[id].LogIndex, l.pred.Configuration.Workspace))
			return false
		}
	}
	if len(got) == len(logged) {
		na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrApplyOrder, "lists applies %v, the log has them in the order %v", got, logged))
		return false
	}
	na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrChainGap, "lists applies %v, but only %v were logged for %s since the previous link", got, logged, l.pred.Configuration.Workspace))
	return false
}

// applyPatch checks the apply id (rules 1–2) and applies its patch bytes,
// which its Patch record's sha256 fixes, to tree.
func (na *nodeAudit) applyPatch(l link, id, tree string) bool {
	fail := func(err error) { na.r.Fail("configuration", ptr(l.index), l.id, err) }
	before := len(na.r.Failures) + len(na.r.Uncertain)
	na.apply(id)
	if len(na.r.Failures)+len(na.r.Uncertain) > before {
		fail(errf(ErrUnapprovedApply, "apply %s fails the safety boundary (see above)", id))
		return false
	}
	res := na.verified[id]
	var ap attest.ApplyPredicate
	if res == nil || res.Statement.DecodePredicate(&ap) != nil {
		fail(errf(ErrUnapprovedApply, "apply %s could not be verified", id))
		return false
	}
	b, err := na.patchBytes(ap.Patch)
	if err != nil {
		fail(err)
		return false
	}
	root, err := os.OpenRoot(tree)
	if err != nil {
		fail(unavailable("%v", err))
		return false
	}
	defer root.Close()
	if err := chain.ApplyPatch(root, b); err != nil {
		file := ""
		var pe *chain.PatchError
		if errors.As(err, &pe) {
			file = pe.File
		}
		fail(errf(ErrPatchDoesNotApply, "patch %s of apply %s does not apply to the previous state (file %q): %v", ap.Patch.CID, id, file, err))
		return false
	}
	return true
}

// sameSource compares the rebuilt tree's NAR hash with the attested
// source; on a mismatch it names the files that differ from the node's
// own source NAR.
func (na *nodeAudit) sameSource(l link, tree, dir string) bool {
	src := l.pred.Configuration.Source
	got, err := chain.NarHash(tree)
	if err != nil {
		na.r.Fail("configuration", ptr(l.index), l.id, unavailable("hash rebuilt source: %v", err))
		return false
	}
	if got == src.NarHash {
		return true
	}
	detail := "the node's source NAR could not be compared"
	if b, ok := na.sourceNAR(l, "attested source", src); ok {
		other, err := os.MkdirTemp(dir, "attested-")
		if err == nil {
			err = chain.UnpackNAR(bytes.NewReader(b), filepath.Join(other, "tree"))
			other = filepath.Join(other, "tree")
		}
		if err == nil {
			if files, err := chain.DiffTrees(tree, other); err == nil {
				detail = fmt.Sprintf("files differing from the previous state plus the approved patches: %v", files)
			}
		}
	}
	na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrSourceMismatch, "rebuilt source hashes to %s, the node attests %s; %s", got, src.NarHash, detail))
	return false
}

// evaluates evaluates the rebuilt tree with this auditor's Nix and
// compares the toplevel with the link's and with the closure it names.
func (na *nodeAudit) evaluates(l link, tree string) bool {
	c := l.pred.Configuration
	// sameSource has just hashed the tree to the attested source.
	top, err := chain.EvaluateHashed(na.ctx, tree, c.Source.NarHash, c.Toplevel.Attr)
	if err != nil {
		if errors.Is(err, chain.ErrCannotEvaluate) {
			na.r.Fail("configuration", ptr(l.index), l.id, unavailable("evaluate %s: %v", c.Toplevel.Attr, err))
		} else {
			na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrToplevelMismatch, "the rebuilt source does not evaluate: %v", err))
		}
		return false
	}
	switch {
	case top.OutPath != l.pred.Closure.RootStorePath:
		na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrToplevelMismatch, "the source evaluates to %s, the node runs %s", top.OutPath, l.pred.Closure.RootStorePath))
		return false
	case top.OutPath != c.Toplevel.OutPath || top.DrvPath != c.Toplevel.DrvPath:
		na.r.Fail("configuration", ptr(l.index), l.id, errf(ErrToplevelMismatch, "the source evaluates to %s (%s), the node attests %s (%s)", top.OutPath, top.DrvPath, c.Toplevel.OutPath, c.Toplevel.DrvPath))
		return false
	}
	return true
}

// rebuild builds the latest link's toplevel from the rebuilt tree with this
// auditor's Nix and compares every path's NAR hash with the node's closure
// (reproducibility, as Trustix and r13y check it).
func (na *nodeAudit) rebuild(l link, tree string) {
	c := l.pred.Configuration
	out, err := chain.Build(na.ctx, tree, c.Toplevel.Attr)
	if err != nil {
		na.r.Fail("rebuild", ptr(l.index), l.id, unavailable("build %s: %v", c.Toplevel.Attr, err))
		return
	}
	infos, err := (&closure.LocalNix{}).Closure(na.ctx, out)
	if err != nil {
		na.r.Fail("rebuild", ptr(l.index), l.id, unavailable("path-info of %s: %v", out, err))
		return
	}
	if na.closureNars == nil {
		na.r.Fail("rebuild", ptr(l.index), l.id, unavailable("the node's closure could not be read to compare"))
		return
	}
	var differ []string
	for _, pi := range infos {
		if node, ok := na.closureNars[pi.Path]; !ok || node != pi.NarHashString() {
			differ = append(differ, pi.Path)
		}
	}
	if len(differ) > 0 {
		na.r.Fail("rebuild", ptr(l.index), l.id, errf(ErrNotReproduced, "%d of %d path(s) rebuilt here differ from the node's (NAR hash, or missing from its closure): %v", len(differ), len(infos), differ))
		return
	}
	na.r.Prove("rebuilt %s here: all %d path(s) have the node's NAR hashes", out, len(infos))
}
