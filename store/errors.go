package store

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
)

// Sentinel errors. Every error the package returns for one of these
// conditions matches the sentinel with errors.Is; the typed errors below carry
// the details (which CID, which section) and are reachable with errors.As.
var (
	// ErrNotPinned: Unpin of a CID that has no pin.
	ErrNotPinned = errors.New("not pinned")
	// ErrInvalidCAR: a CAR that is not well formed (bad header, truncated
	// section, trailing garbage, unsupported version).
	ErrInvalidCAR = errors.New("invalid CAR")
	// ErrMissingRoot: a CAR header names a root whose block is neither in
	// the CAR nor already in the store.
	ErrMissingRoot = errors.New("CAR root block missing")
	// ErrUnsupportedCodec: a block of a codec whose links the store cannot
	// read, reached while walking a DAG.
	ErrUnsupportedCodec = errors.New("unsupported codec")
	// ErrUndecodable: a block whose bytes do not decode in its CID's codec.
	ErrUndecodable = errors.New("block does not decode")
	// ErrInvalidCID: text that is not a CID.
	ErrInvalidCID = errors.New("invalid CID")
	// ErrInvalidPath: text that is not an IPFS path.
	ErrInvalidPath = errors.New("invalid IPFS path")
)

// MissingBlockError reports a block that a DAG walk needed but the store does
// not hold. Parent is the block that links to it (undefined for a root).
// It matches ErrNotFound.
type MissingBlockError struct {
	Cid    cid.Cid
	Parent cid.Cid
}

func (e *MissingBlockError) Error() string {
	if e.Parent.Defined() {
		return fmt.Sprintf("block %s (linked from %s) is not in the store", e.Cid, e.Parent)
	}
	return fmt.Sprintf("block %s is not in the store", e.Cid)
}

func (e *MissingBlockError) Is(target error) bool { return target == ErrNotFound }

// UnsupportedCodecError reports a block whose codec the walker cannot decode.
// It matches ErrUnsupportedCodec.
type UnsupportedCodecError struct {
	Cid cid.Cid
}

func (e *UnsupportedCodecError) Error() string {
	return fmt.Sprintf("block %s: codec %s is not supported (dag-pb, dag-cbor, dag-json and raw are)",
		e.Cid, multicodec.Code(e.Cid.Type()))
}

func (e *UnsupportedCodecError) Is(target error) bool { return target == ErrUnsupportedCodec }

// DecodeError reports a block whose bytes do not decode in its CID's codec.
// It matches ErrUndecodable.
type DecodeError struct {
	Cid cid.Cid
	Err error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("block %s does not decode as %s: %v", e.Cid, multicodec.Code(e.Cid.Type()), e.Err)
}

func (e *DecodeError) Is(target error) bool { return target == ErrUndecodable }
func (e *DecodeError) Unwrap() error        { return e.Err }

// InvalidCARError reports a malformed CAR. Section is the 0-based index of the
// block section being read when the problem was found, or -1 for the header.
// It matches ErrInvalidCAR and unwraps to the parser's error.
type InvalidCARError struct {
	Section int
	Err     error
}

func (e *InvalidCARError) Error() string {
	if e.Section < 0 {
		return fmt.Sprintf("invalid CAR: header: %v", e.Err)
	}
	return fmt.Sprintf("invalid CAR: block section %d: %v", e.Section, e.Err)
}

func (e *InvalidCARError) Is(target error) bool { return target == ErrInvalidCAR }
func (e *InvalidCARError) Unwrap() error        { return e.Err }

// MissingRootError reports a CAR root that is neither in the CAR nor in the
// store. It matches ErrMissingRoot.
type MissingRootError struct {
	Cid cid.Cid
}

func (e *MissingRootError) Error() string {
	return fmt.Sprintf("CAR root %s is neither in the CAR nor in the store", e.Cid)
}

func (e *MissingRootError) Is(target error) bool { return target == ErrMissingRoot }

// ParseError reports text that is not a CID or an IPFS path. Kind is
// ErrInvalidCID or ErrInvalidPath, which the error matches; Err, when set, is
// the underlying decoder's error.
type ParseError struct {
	Input  string
	Kind   error
	Reason string
	Err    error
}

func (e *ParseError) Error() string {
	in := e.Input
	if len(in) > 120 {
		in = in[:120] + "…"
	}
	msg := fmt.Sprintf("%v %q: %s", e.Kind, in, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ParseError) Is(target error) bool { return target == e.Kind }
func (e *ParseError) Unwrap() error        { return e.Err }
