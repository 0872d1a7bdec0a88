package audit

import (
	"errors"
	"strings"
	"testing"
)

// snapshotOf is the attested snapshot of lines (each with its newline).
func snapshotOf(lines []string, withBytes bool) AttestedSnapshot {
	t := NewTree()
	for _, l := range lines {
		t.Append([]byte(strings.TrimSuffix(l, "\n")))
	}
	s := AttestedSnapshot{ID: "att", Lines: int64(len(lines)), Root: t.Root()}
	if withBytes {
		s.Bytes = []byte(strings.Join(lines, ""))
	}
	return s
}

// TestCheckWorkspaceSnapshots: rule 4 against attested snapshots, with and
// without the snapshot bytes.
func TestCheckWorkspaceSnapshots(t *testing.T) {
	orig := sampleLines(t)
	edited := append([]string{}, orig...)
	edited[1] = strings.Replace(edited[1], `"execute": true`, `"execute": false`, 1)
	grown := append(append([]string{}, orig...), orig[5])
	for _, tc := range []struct {
		name    string
		file    []string
		snaps   []AttestedSnapshot
		ok      bool
		line    int64
		message string
	}{
		{"same file", orig, []AttestedSnapshot{snapshotOf(orig, false)}, true, 0, ""},
		{"grown, two snapshots", grown, []AttestedSnapshot{snapshotOf(orig[:3], false), snapshotOf(orig, true), snapshotOf(nil, false)}, true, 0, ""},
		{"edited, bytes known", edited, []AttestedSnapshot{snapshotOf(orig, true)}, false, 2, "line 2 edited"},
		{"edited, bytes unknown", edited, []AttestedSnapshot{snapshotOf(orig, false)}, false, 0, "no longer hash"},
		{"truncated", orig[:4], []AttestedSnapshot{snapshotOf(orig, false)}, false, 5, "the file has 4 lines"},
		{"removed, bytes known", append(append([]string{}, orig[:2]...), orig[3:]...), []AttestedSnapshot{snapshotOf(orig[:5], true)}, false, 3, "line 3 removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := newWorkspace(t, tc.file)
			rep, err := CheckWorkspace(ws, nil, Inputs{Snapshots: tc.snaps})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Snapshots) != len(tc.snaps) {
				t.Fatalf("%d snapshot checks, want %d", len(rep.Snapshots), len(tc.snaps))
			}
			if rep.Result.Passed != tc.ok {
				t.Fatalf("passed %v, want %v: %+v", rep.Result.Passed, tc.ok, rep.Result.Violations)
			}
			if tc.ok {
				for _, s := range rep.Snapshots {
					if !s.Consistent {
						t.Fatalf("snapshot %+v not consistent", s)
					}
				}
				return
			}
			var v *Violation
			if err := rep.Result.Err(); !errors.Is(err, ErrNotAppendOnly) || !errors.As(err, &v) {
				t.Fatalf("error %v does not match ErrNotAppendOnly", err)
			}
			if v.Rule != RuleAppendOnly || v.Line != tc.line || !strings.Contains(v.Message, tc.message) {
				t.Fatalf("violation %+v, want rule 4 at line %d with %q", v, tc.line, tc.message)
			}
		})
	}
}

func TestLinkRunningConfig(t *testing.T) {
	claims := []ApplyClaim{{ID: "a1", Line: 3, PatchSHA256: "aa"}, {ID: "a2", Line: 9}}
	rc := LinkRunningConfig("rc", []string{"a1", "x", "a2"}, claims)
	if len(rc.ApplyLines) != 2 || rc.ApplyLines[0] != 3 || rc.ApplyLines[1] != 9 || len(rc.Unknown) != 1 || rc.Unknown[0] != "x" || rc.PatchSHA256[3] != "aa" {
		t.Fatalf("linked %+v", rc)
	}
}
