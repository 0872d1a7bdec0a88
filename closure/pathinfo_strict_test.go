package closure

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestParsePathInfoJSONStrict: path-info JSON with a repeated member name
// is refused with an error naming it (encoding/json let the last repeat
// win), and member names are matched exactly, as Nix itself writes and
// reads them: "NarHash" is not narHash (encoding/json took it for one).
func TestParsePathInfoJSONStrict(t *testing.T) {
	const (
		sri   = "sha256-m37wDk6SOD7OvKrbHifwF3vEQ3xuqpA8dk7tAZQGALA="
		b32   = "sha256:1c000sa03vaffqy91akfgi1w8yqpy0kixnxapk73wf4j9q7g0zlv"
		other = "sha256:0000000000000000000000000000000000000000000000000000"
	)
	entry := `"narHash":"` + sri + `","narSize":328,"references":[]`
	for _, tc := range []struct {
		name string
		json string
		key  string // the member the error must name; "" when accepted
	}{
		{"duplicate narHash, list form", `[{"path":"` + spA + `","narHash":"` + other + `",` + entry + `}]`, "narHash"},
		{"duplicate narSize, list form", `[{"path":"` + spA + `","narSize":1,` + entry + `}]`, "narSize"},
		{"duplicate path, list form", `[{"path":"` + spB + `","path":"` + spA + `",` + entry + `}]`, "path"},
		{"duplicate references, list form", `[{"path":"` + spA + `","references":["` + spB + `"],` + entry + `}]`, "references"},
		{"duplicate store path, object form", `{"` + spA + `":{` + entry + `},"` + spA + `":{"narHash":"` + other + `","narSize":1,"references":[]}}`, spA},
		{"duplicate narHash, object form", `{"` + spA + `":{"narHash":"` + other + `",` + entry + `}}`, "narHash"},
		{"duplicate valid", `[{"path":"` + spA + `","valid":false,"valid":true,` + entry + `}]`, "valid"},
		{"case-variant NarHash is not narHash", `[{"path":"` + spA + `",` + entry + `,"NarHash":"` + other + `"}]`, ""},
		{"case-variant Path is not path", `{"` + spA + `":{"Path":"` + spB + `",` + entry + `}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			infos, err := ParsePathInfoJSON([]byte(tc.json), "")
			if tc.key != "" {
				if !errors.Is(err, ErrBadPathInfo) {
					t.Fatalf("err = %v, want ErrBadPathInfo", err)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.key)) {
					t.Fatalf("error %q does not name %q", err, tc.key)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(infos) != 1 || infos[0].Path != spA || infos[0].NarHashString() != b32 {
				t.Fatalf("infos = %+v, want %s with narHash %s", infos, spA, b32)
			}
		})
	}
}
