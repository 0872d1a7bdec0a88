package schemas

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestValidatePredicateStrict: predicate JSON with a repeated member name is
// refused naming it (the validator's own decoder let the last repeat win,
// so `{"patch":<bad>,"patch":<good>}` passed), and a case variant of a
// member is not the member (the closed schemas refuse it).
func TestValidatePredicateStrict(t *testing.T) {
	pr := `{"cid":"` + vCID + `","sha256":"` + vSHA + `"}`
	good := `{"patch":` + pr + `}`
	if err := ValidatePredicate(PredicateApproval, []byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, json, key string }{
		{"duplicate patch", `{"patch":{"cid":"x"},"patch":` + pr + `}`, "patch"},
		{"duplicate cid", `{"patch":{"cid":"x","cid":"` + vCID + `","sha256":"` + vSHA + `"}}`, "cid"},
		{"duplicate comment", `{"patch":` + pr + `,"comment":"a","comment":"b"}`, "comment"},
		{"case-variant Patch", `{"Patch":{"cid":"x"},"patch":` + pr + `}`, "Patch"},
		{"invalid UTF-8", "{\"patch\":" + pr + ",\"comment\":\"\xff\"}", "comment"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := ValidatePredicate(PredicateApproval, []byte(c.json))
			var se *SchemaError
			if !errors.As(err, &se) || !errors.Is(err, ErrSchema) {
				t.Fatalf("err = %v, want a *SchemaError", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", c.key)) && !strings.Contains(err.Error(), "'"+c.key+"'") && !strings.Contains(err.Error(), "/"+c.key) {
				t.Fatalf("error %q does not name %q", err, c.key)
			}
		})
	}
}
