package closure

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestResultJSON(t *testing.T) {
	c := rawLeafForTest(t)
	for _, v := range []any{ImportResult{Closure: c, Root: spA}, &VerifyResult{Closure: c}, ClosureSummary{CID: c}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"`+c.String()+`"`) || strings.Contains(string(b), `"/"`) {
			t.Fatalf("%T JSON = %s, want the CID as a string", v, b)
		}
	}
}
