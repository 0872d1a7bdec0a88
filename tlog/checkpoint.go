package tlog

import (
	"bytes"
	"errors"
	"fmt"

	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// SignedCheckpoint is a C2SP tlog-checkpoint wrapped in a C2SP signed note.
type SignedCheckpoint struct {
	Origin string
	Size   uint64
	Hash   []byte // RFC 6962 root hash of the first Size entries
	// Note is the signed note: checkpoint body, blank line, the log's
	// signature and any witness cosignatures gathered so far.
	Note []byte
}

func (l *Log) sign(size uint64, root []byte) (SignedCheckpoint, error) {
	body := flog.Checkpoint{Origin: l.origin, Size: size, Hash: root}.Marshal()
	n, err := note.Sign(&note.Note{Text: string(body)}, l.opts.Signer)
	if err != nil {
		return SignedCheckpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return SignedCheckpoint{Origin: l.origin, Size: size, Hash: root, Note: n}, nil
}

// parseCheckpointBody parses the text of a checkpoint note (no signatures).
func parseCheckpointBody(text []byte) (flog.Checkpoint, error) {
	var c flog.Checkpoint
	if _, err := c.Unmarshal(text); err != nil {
		return c, fmt.Errorf("%w: %v", ErrCheckpointForm, err)
	}
	if len(c.Hash) != hashSize {
		return c, fmt.Errorf("%w: root hash of %d bytes", ErrCheckpointForm, len(c.Hash))
	}
	return c, nil
}

// parseOwnCheckpoint parses a stored note without checking signatures.
func parseOwnCheckpoint(n []byte, origin string) (SignedCheckpoint, error) {
	text, _, ok := bytes.Cut(n, []byte("\n\n"))
	if !ok {
		return SignedCheckpoint{}, fmt.Errorf("%w: no signature block", ErrCheckpointForm)
	}
	c, err := parseCheckpointBody(append(text, '\n'))
	if err != nil {
		return SignedCheckpoint{}, err
	}
	if c.Origin != origin {
		return SignedCheckpoint{}, fmt.Errorf("%w: origin %q, want %q", ErrCheckpointForm, c.Origin, origin)
	}
	return SignedCheckpoint{Origin: c.Origin, Size: c.Size, Hash: c.Hash, Note: n}, nil
}

// VerifyCheckpoint opens the signed note noteBytes with v, parses it as a
// C2SP tlog-checkpoint. The caller checks the returned Origin against the
// log it expects. Signatures by keys other than v (such as witness
// cosignatures) are ignored. Errors wrap ErrCheckpointSig or
// ErrCheckpointForm.
func VerifyCheckpoint(noteBytes []byte, v note.Verifier) (SignedCheckpoint, error) {
	n, err := note.Open(noteBytes, note.VerifierList(v))
	if err != nil {
		var unk *note.UnverifiedNoteError
		var bad *note.InvalidSignatureError
		if errors.As(err, &unk) || errors.As(err, &bad) {
			return SignedCheckpoint{}, fmt.Errorf("%w: %v", ErrCheckpointSig, err)
		}
		return SignedCheckpoint{}, fmt.Errorf("%w: %v", ErrCheckpointForm, err)
	}
	c, err := parseCheckpointBody([]byte(n.Text))
	if err != nil {
		return SignedCheckpoint{}, err
	}
	return SignedCheckpoint{Origin: c.Origin, Size: c.Size, Hash: c.Hash, Note: bytes.Clone(noteBytes)}, nil
}

// Cosigners returns the names of the verifiers among vs whose signatures
// on c's note verify (for witness cosignatures use cosignature/v1
// verifiers from github.com/transparency-dev/formats/note).
func (c SignedCheckpoint) Cosigners(vs ...note.Verifier) []string {
	var names []string
	for _, v := range vs {
		if _, err := note.Open(c.Note, note.VerifierList(v)); err == nil {
			names = append(names, v.Name())
		}
	}
	return names
}
