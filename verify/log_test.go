package verify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/attest"
)

func checkLog(t *testing.T, target string, p *attest.Policy, st *State, full bool) *Report {
	t.Helper()
	src, err := OpenLogSource(target, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := CheckLog(context.Background(), src, p, target, LogOptions{State: st, Full: full})
	return r
}

func wantReason(t *testing.T, r *Report, reason string, sentinel error) {
	t.Helper()
	for _, f := range append(r.Failures, r.Uncertain...) {
		if f.Reason == reason && (sentinel == nil || errors.Is(f.Err, sentinel)) {
			return
		}
	}
	t.Fatalf("want a %q finding, got report %+v", reason, r)
}

func mustOK(t *testing.T, r *Report) {
	t.Helper()
	if !r.OK || r.Err() != nil {
		t.Fatalf("want proven, got failures %+v uncertain %+v", r.Failures, r.Uncertain)
	}
}

func TestCheckLogHistory(t *testing.T) {
	dir := initNodeDir(t, "alpha")
	twin := copyDir(t, dir) // same keys and origin: a second view of the log
	a := openNode(t, dir)
	b := openNode(t, twin)
	for i := range 3 {
		a.proposal(t, fmt.Sprintf("patch a%d", i))
		b.proposal(t, fmt.Sprintf("patch b%d", i))
	}
	old := mirror(t, a.logURL()) // size 3, as static tiles
	for i := 3; i < 6; i++ {
		a.proposal(t, fmt.Sprintf("patch a%d", i))
	}

	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// First sight of the tiles directory at size 3, then the live log at
	// size 6: consistent.
	mustOK(t, checkLog(t, old, a.policy, st, true))
	mustOK(t, checkLog(t, a.logURL(), a.policy, st, true))
	ls, _ := st.Load(a.n.Log.Origin())
	if ls.Latest.Size != 6 || len(ls.Accepted) != 2 {
		t.Fatalf("state %+v", ls)
	}

	cases := []struct {
		name, target, reason string
		sentinel             error
	}{
		{"rollback", old, "rollback", ErrRollback},
		{"split view at an accepted size", b.logURL(), "split-view", ErrSplitView}, // b is at size 3 with other roots
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := checkLog(t, c.target, a.policy, st, false)
			wantReason(t, r, c.reason, c.sentinel)
			if _, ok := r.Err().(*FailedError); !ok {
				t.Fatalf("Err() = %T, want *FailedError", r.Err())
			}
		})
	}
	// An inconsistent larger tree: b grows past 6 with other entries.
	for i := 3; i < 8; i++ {
		b.proposal(t, fmt.Sprintf("patch b%d", i))
	}
	wantReason(t, checkLog(t, b.logURL(), a.policy, st, false), "inconsistent-checkpoint", ErrInconsistent)
	// Nothing failed was remembered.
	ls, _ = st.Load(a.n.Log.Origin())
	if ls.Latest.Size != 6 || len(ls.Accepted) != 2 {
		t.Fatalf("state changed by failed checks: %+v", ls)
	}
}

func TestCheckLogRejects(t *testing.T) {
	a := openNode(t, initNodeDir(t, "alpha"))
	other := openNode(t, initNodeDir(t, "beta"))
	a.proposal(t, "good")
	ctx := context.Background()

	// Entries a replay must reject, each for its own reason.
	forged := a.proposalEnvelope(t, "forged", a.signer)
	var env attest.Envelope
	json.Unmarshal(forged, &env)
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	sig[0] ^= 1
	env.Signatures[0].Sig = base64.StdEncoding.EncodeToString(sig)
	forged, _ = attest.MarshalEnvelope(&env)
	entries := []struct {
		entry  []byte
		reason string
	}{
		{forged, "forged-signature"},
		{a.proposalEnvelope(t, "untrusted", other.signer), "untrusted-signer"},
		{[]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"`), "malformed-envelope"},
	}
	var idx []uint64
	for _, e := range entries {
		i, err := a.n.Log.Append(ctx, e.entry)
		if err != nil {
			t.Fatal(err)
		}
		idx = append(idx, i)
	}
	r := checkLog(t, a.logURL(), a.policy, nil, true)
	for k, e := range entries {
		found := false
		for _, f := range r.Failures {
			if f.Entry != nil && *f.Entry == idx[k] && f.Reason == e.reason {
				found = true
			}
		}
		if !found {
			t.Errorf("entry %d: want reason %q, report %+v", idx[k], e.reason, r.Failures)
		}
	}

	// A checkpoint checked with another log's key.
	wrong := *a.policy
	pb, _ := json.Marshal(struct {
		Version int                `json:"version"`
		Logs    []attest.LogPolicy `json:"logs"`
	}{1, []attest.LogPolicy{{Origin: a.n.Log.Origin(), Key: other.policy.Logs[0].Key}}})
	wp, err := attest.ParsePolicy(pb)
	if err != nil {
		t.Fatal(err)
	}
	_ = wrong
	wantReason(t, checkLog(t, a.logURL(), wp, nil, false), "checkpoint-signature", attest.ErrCheckpoint)

	// An unreachable log could not be checked: uncertain, not failed.
	down := checkLog(t, "http://127.0.0.1:1/log/", a.policy, nil, false)
	if _, ok := down.Err().(*UncertainError); !ok {
		t.Fatalf("unreachable log: Err() = %v, want *UncertainError", down.Err())
	}
}

// TestReplayRawEntries replays a log holding raw `log append` entries
// between attestations, as the README tour makes: the raw entries are
// counted as such, not failed as malformed envelopes, and the tree is
// still proven.
func TestReplayRawEntries(t *testing.T) {
	a := openNode(t, initNodeDir(t, "alpha"))
	ctx := context.Background()
	a.proposal(t, "one")
	for _, e := range []string{"hello\n", "", `{"not":"an envelope"}`} {
		if _, err := a.n.Log.Append(ctx, []byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	a.proposal(t, "two")
	src, err := OpenLogSource(a.logURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, res := CheckLog(ctx, src, a.policy, a.logURL(), LogOptions{Full: true})
	mustOK(t, r)
	if res.Replayed != 5 || res.RawEntries != 3 || res.BadEntries != 0 {
		t.Fatalf("replayed %d, raw %d, bad %d; want 5, 3, 0", res.Replayed, res.RawEntries, res.BadEntries)
	}
}

// TestReplayNamesBadEntry serves a log through a proxy that alters what
// the node serves, and checks that the replay names the first bad index:
// an altered entry in a bundle (the tiles and root disagree with it), and
// a level-0 tile with one wrong hash (the entries, proven by the root,
// disagree with it). A node that refuses a corrupt bundle (500) leaves the
// auditor uncertain about that bundle, never proven.
func TestReplayNamesBadEntry(t *testing.T) {
	a := openNode(t, initNodeDir(t, "alpha"))
	ctx := context.Background()
	for i := range 5 {
		a.proposal(t, fmt.Sprintf("p%d", i))
	}
	origin := strings.TrimSuffix(a.logURL(), "/log/")
	proxy := func(alter func(path string, b []byte) ([]byte, int)) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resp, err := http.Get(origin + r.URL.Path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code := resp.StatusCode
			if code == http.StatusOK {
				b, code = alter(r.URL.Path, b)
			}
			w.WriteHeader(code)
			w.Write(b)
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/log/"
	}
	findings := func(target string) (*Report, []Finding) {
		src, err := OpenLogSource(target, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := CheckLog(ctx, src, a.policy, target, LogOptions{Full: true})
		return r, append(r.Failures, r.Uncertain...)
	}
	flip := func(want string, off func(b []byte) int) func(string, []byte) ([]byte, int) {
		return func(p string, b []byte) ([]byte, int) {
			if strings.HasPrefix(p, want) {
				b[off(b)] ^= 1
			}
			return b, http.StatusOK
		}
	}
	// Entry 3's last byte: bundle entries are length-prefixed, so walk them.
	entryEnd := func(n int) func(b []byte) int {
		return func(b []byte) int {
			p := 0
			for i := 0; ; i++ {
				l := int(b[p])<<8 | int(b[p+1])
				p += 2 + l
				if i == n {
					return p - 1
				}
			}
		}
	}
	cases := []struct {
		name   string
		alter  func(string, []byte) ([]byte, int)
		reason string
		entry  uint64
		msg    string
	}{
		{"altered entry", flip("/log/tile/entries/", entryEnd(3)), "entry-mismatch", 3, "entry 3 does not hash"},
		{"altered tile", flip("/log/tile/0/", func([]byte) int { return 2*32 + 7 }), "entry-mismatch", 2, "tile 0 serves a wrong leaf hash for entry 2"},
		{"refused bundle", func(p string, b []byte) ([]byte, int) {
			if strings.HasPrefix(p, "/log/tile/entries/") {
				return []byte("read entry bundle: entry 3 does not match\n"), http.StatusInternalServerError
			}
			return b, http.StatusOK
		}, "unavailable", 0, "500: read entry bundle: entry 3 does not match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, fs := findings(proxy(c.alter))
			if r.OK {
				t.Fatal("proven")
			}
			var first *Finding
			for i, f := range fs {
				if f.Reason == c.reason && f.Entry != nil {
					first = &fs[i]
					break
				}
			}
			if first == nil || *first.Entry != c.entry || !strings.Contains(first.Message, c.msg) {
				t.Fatalf("findings %+v: want the first %s finding at entry %d, saying %q", fs, c.reason, c.entry, c.msg)
			}
		})
	}
}
