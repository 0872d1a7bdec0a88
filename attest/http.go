package attest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/ipfs/go-cid"
)

// Handler serves the read-only attestation API, meant to be mounted at
// /api/v1/attestations:
//
//	GET <prefix>?subject=CID&sha256=HEX&name=NAME&predicateType=URI&signer=KEYID&limit=N
//	    -> 200, JSON array of Record in log order (all parameters optional)
//	GET <prefix>/<id>
//	    -> 200, the exact envelope bytes (application/vnd.dsse.envelope.v1+json)
//	    -> 404 for an unknown id
//
// blocks may be nil, in which case <prefix>/<id> returns the Record.
func Handler(prefix string, ix *Index, blocks BlockGetter) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		rest = strings.Trim(rest, "/")
		if rest == "" {
			qv := r.URL.Query()
			q := Query{Subject: qv.Get("subject"), SHA256: qv.Get("sha256"), Name: qv.Get("name"),
				PredicateType: qv.Get("predicateType"), Signer: qv.Get("signer")}
			if l := qv.Get("limit"); l != "" {
				n, err := strconv.Atoi(l)
				if err != nil || n < 0 {
					http.Error(w, "limit: not a non-negative integer", http.StatusBadRequest)
					return
				}
				q.Limit = n
			}
			rs, err := ix.Search(q)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if rs == nil {
				rs = []Record{}
			}
			writeJSON(w, rs)
			return
		}
		id, err := cid.Decode(rest)
		if err != nil {
			http.Error(w, "not a CID: "+rest, http.StatusBadRequest)
			return
		}
		rec, err := ix.Get(id)
		if errors.Is(err, ErrNotFound) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if blocks == nil {
			writeJSON(w, rec)
			return
		}
		blk, err := blocks.Get(r.Context(), id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.dsse.envelope.v1+json")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write(blk.RawData())
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
