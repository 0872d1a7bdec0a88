package closure

import (
	"context"
	"fmt"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/store"
	"github.com/ipfs/go-cid"
)

// RunningConfigOptions add what the node knows beyond the closure to a
// running-config/v1 attestation.
type RunningConfigOptions struct {
	// ConfigCommit is the configuration commit the system was built from.
	ConfigCommit string
	// Applies are the ids (CIDs) of the apply/v1 attestations the
	// configuration includes, oldest first.
	Applies []string
	// Generation is the NixOS system generation number, if known.
	Generation int64
	// Time is when the node switched to the closure (zero: omitted).
	Time time.Time
}

// RunningConfig builds and signs a running-config/v1 attestation for the
// stored closure c: the node runs the closure whose Closure record is c,
// whose root store path is the record's root and whose root NAR has the
// record's narHash. The subject is ipfs://<c> with the SHA-256 of the
// Closure block. The closure is verified first (Verify), so the node never
// attests a closure it does not hold completely and intact. It returns the
// DSSE envelope's bytes, ready for attest.Publisher.Publish.
func RunningConfig(ctx context.Context, st *store.Store, c cid.Cid, o RunningConfigOptions, signer *attest.Signer) ([]byte, error) {
	vr, err := Verify(ctx, st, c)
	if err != nil {
		return nil, err
	}
	var rootHash string
	for _, e := range vr.Entries {
		if e.Path == vr.Root {
			rootHash = e.NarHashString()
		}
	}
	blk, err := st.Blockstore().Get(ctx, c)
	if err != nil {
		return nil, err
	}
	dec, err := decodeMultihashDigest(blk.Cid())
	if err != nil {
		return nil, err
	}
	pred := attest.RunningConfigPredicate{
		Closure:      attest.ClosureRef{CID: c.String(), RootStorePath: vr.Root, NarHash: rootHash},
		ConfigCommit: o.ConfigCommit,
		Applies:      o.Applies,
		Generation:   o.Generation,
	}
	if pred.Applies == nil {
		pred.Applies = []string{}
	}
	if !o.Time.IsZero() {
		pred.Time = o.Time.UTC().Format(time.RFC3339)
	}
	_, payload, err := attest.NewStatement(attest.PredicateRunningConfig,
		[]attest.ResourceDescriptor{attest.Subject(c, dec, vr.Root)}, pred)
	if err != nil {
		return nil, fmt.Errorf("running-config statement for %s: %w", c, err)
	}
	env, err := attest.SignEnvelope(ctx, attest.PayloadType, payload, signer)
	if err != nil {
		return nil, err
	}
	return attest.MarshalEnvelope(env)
}
