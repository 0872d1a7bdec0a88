package attest

import (
	"context"
	"errors"
	"fmt"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/agentix/agentix-store/schemas"
)

// BlockPutter stores blocks (the node's block store satisfies it).
type BlockPutter interface {
	Put(ctx context.Context, b blocks.Block) error
}

// HoldingPutter is a BlockPutter under garbage collection that can keep a
// block it stores from being collected until release is called
// (*store.Blockstore satisfies it). Publish uses it to keep the envelope
// block from the Put until the index, a GC root, names it.
type HoldingPutter interface {
	BlockPutter
	PutHeld(ctx context.Context, b blocks.Block) (release func(), err error)
}

// Appender appends one entry to a transparency log and returns its index
// once the entry is durable (the node's log satisfies it).
type Appender interface {
	Append(ctx context.Context, entry []byte) (uint64, error)
}

// ID returns the attestation id of encoded envelope bytes: the CIDv1 with
// the raw codec and a sha2-256 multihash of exactly those bytes.
func ID(envelope []byte) cid.Cid {
	sum, _ := mh.Sum(envelope, mh.SHA2_256, -1) // cannot fail for SHA2_256
	return cid.NewCidV1(cid.Raw, sum)
}

// Publisher stores, logs and indexes attestations.
type Publisher struct {
	Blocks BlockPutter
	Log    Appender
	Index  *Index // may be nil: no indexing
}

// Published is the outcome of publishing one attestation.
type Published struct {
	ID       cid.Cid `json:"id"`
	LogIndex uint64  `json:"logIndex"`
	Record   Record  `json:"record"`
	// Existing is true when the attestation had been published before and
	// nothing new was stored or logged.
	Existing bool `json:"existing,omitempty"`
}

// Publish publishes the exact envelope bytes b:
//
//  1. b must parse (ParseEnvelope), carry PayloadType and an in-toto
//     Statement v1 whose subjects carry ipfs://<cid> and sha256, with a
//     known agentix predicate that satisfies its JSON Schema. Signatures
//     are not checked against any trust policy (auditors do that), but an
//     envelope must have at least one.
//  2. b is stored as a raw block; its CID (ID) is the attestation's id.
//  3. b itself is appended to the log; the log entry is the envelope bytes,
//     so an inclusion proof for RFC 6962 leaf hash SHA-256(0x00 || b)
//     proves the attestation was logged.
//  4. The index records the id, log index, predicate type, subjects and
//     the key ids the signatures name.
//
// The index is what makes the envelope block a GC root. When Blocks is a
// HoldingPutter (the node's block store), the block is held from the Put
// until the index record is written, so a GC running meanwhile keeps it:
// once Publish returns, the attestation is reachable from a root.
//
// Publishing bytes already in the index returns the existing record with
// Existing set and does not append again (it stores the block again if it
// is missing). A failure between steps 3 and 4
// leaves the entry logged but unindexed; publishing again then logs it a
// second time (the log is append-only; both entries prove the same bytes).
func (p *Publisher) Publish(ctx context.Context, b []byte) (Published, error) {
	env, err := ParseEnvelope(b)
	if err != nil {
		return Published{}, err
	}
	st, err := checkPublishable(env)
	if err != nil {
		return Published{}, err
	}
	id := ID(b)
	blk, err := blocks.NewBlockWithCid(b, id)
	if err != nil {
		return Published{}, err
	}
	if p.Index != nil {
		if r, err := p.Index.Get(id); err == nil {
			// Store the block again (a no-op when it is there): a node
			// that lost it gets it back from whoever republishes.
			release, err := p.put(ctx, blk)
			release()
			if err != nil {
				return Published{}, err
			}
			return Published{ID: id, LogIndex: r.LogIndex, Record: r, Existing: true}, nil
		} else if !errors.Is(err, ErrNotFound) {
			return Published{}, err
		}
	}
	release, err := p.put(ctx, blk)
	defer release()
	if err != nil {
		return Published{}, err
	}
	idx, err := p.Log.Append(ctx, b)
	if err != nil {
		return Published{}, fmt.Errorf("log attestation %s: %w", id, err)
	}
	r := Record{ID: id.String(), LogIndex: idx, PredicateType: st.PredicateType, Subjects: st.Subject, Size: len(b)}
	for _, s := range env.Signatures {
		if s.KeyID != "" && !hasString(r.Signers, s.KeyID) {
			r.Signers = append(r.Signers, s.KeyID)
		}
	}
	if p.Index != nil {
		if err := p.Index.Add(r); err != nil {
			return Published{}, fmt.Errorf("index attestation %s (logged at %d): %w", id, idx, err)
		}
	}
	return Published{ID: id, LogIndex: idx, Record: r}, nil
}

// put stores the envelope block, held from GC until release when Blocks
// can hold it.
func (p *Publisher) put(ctx context.Context, blk blocks.Block) (release func(), err error) {
	release = func() {}
	if hp, ok := p.Blocks.(HoldingPutter); ok {
		release, err = hp.PutHeld(ctx, blk)
	} else {
		err = p.Blocks.Put(ctx, blk)
	}
	if err != nil {
		return release, fmt.Errorf("store attestation %s: %w", blk.Cid(), err)
	}
	return release, nil
}

// PublishEnvelope encodes env with MarshalEnvelope and publishes it.
func (p *Publisher) PublishEnvelope(ctx context.Context, env *Envelope) (Published, error) {
	b, err := MarshalEnvelope(env)
	if err != nil {
		return Published{}, err
	}
	return p.Publish(ctx, b)
}

// Attest builds the statement (NewStatement), signs it with signer and
// publishes it.
func (p *Publisher) Attest(ctx context.Context, signer *Signer, predicateType string, subjects []ResourceDescriptor, predicate any) (Published, error) {
	_, payload, err := NewStatement(predicateType, subjects, predicate)
	if err != nil {
		return Published{}, err
	}
	env, err := SignEnvelope(ctx, PayloadType, payload, signer)
	if err != nil {
		return Published{}, err
	}
	return p.PublishEnvelope(ctx, env)
}

// checkPublishable applies the trust-independent checks of VerifyEnvelope.
func checkPublishable(env *Envelope) (*Statement, error) {
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("%w: %q, want %q", ErrWrongPayloadType, env.PayloadType, PayloadType)
	}
	if len(env.Signatures) == 0 {
		return nil, ErrNoSignature
	}
	payload, _ := env.DecodeB64Payload()
	st, err := ParseStatement(payload)
	if err != nil {
		return nil, err
	}
	if err := st.checkSubjects(); err != nil {
		return nil, err
	}
	if err := schemas.ValidatePredicate(st.PredicateType, st.Predicate); err != nil {
		return nil, err
	}
	return st, nil
}

func hasString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
