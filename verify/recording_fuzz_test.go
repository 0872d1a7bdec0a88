package verify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzOpenRecording: a recording's index is outside input; whatever it
// holds, opening it never panics, and an accepted index names only
// sha256-hex files inside the recording.
func FuzzOpenRecording(f *testing.F) {
	f.Add([]byte(`{"version":1,"base":"http://n","answers":{"/log/checkpoint":{"file":"` + strings.Repeat("ab", 32) + `","status":200}}}`))
	f.Add([]byte(`{"version":1,"base":"http://n","answers":{"/x":{"file":"../../etc/passwd","status":200}}}`))
	f.Add([]byte(`{"version":1,"version":2,"base":"http://n","answers":{}}`))
	f.Add([]byte(`{"Version":1,"base":"http://n","answers":{}}`))
	f.Add([]byte(`{"version":1,"base":"http://n","answers":{},"extra":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, recordingIndex), b, 0o644); err != nil {
			t.Fatal(err)
		}
		rp, err := OpenRecording(dir)
		if err != nil {
			return
		}
		for k, a := range rp.idx.Answers {
			if strings.ContainsAny(a.File, "/.\\") || len(a.File) != 64 {
				t.Fatalf("accepted answer %s with file %q", k, a.File)
			}
		}
	})
}
