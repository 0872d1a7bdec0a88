package schemas

import (
	"errors"
	"strings"
	"testing"
)

const (
	testCID  = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
	testHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

func TestValidatePredicate(t *testing.T) {
	patch := `{"cid":"` + testCID + `","sha256":"` + testHash + `"}`
	line := `{"snapshot":"` + testCID + `","line":3}`
	for _, tc := range []struct {
		name, typ, json string
		want            error
		wantIn          string // substring of the error message
	}{
		{"audit-log ok", PredicateAuditLog, `{"workspace":"/w","snapshot":{"cid":"` + testCID + `","size":7,"root":"` + testHash + `"},"boundary":{"passed":false,"violations":[{"line":4,"rule":"policy_denied_then_apply"}]}}`, nil, ""},
		{"audit-log negative size", PredicateAuditLog, `{"workspace":"/w","snapshot":{"cid":"` + testCID + `","size":-1,"root":"` + testHash + `"},"boundary":{"passed":true,"violations":[]}}`, ErrSchema, "/snapshot/size"},
		{"proposal ok", PredicateProposal, `{"workspace":"/w","patch":` + patch + `,"auditLine":` + line + `,"action":"worktree_run","sourceModified":false}`, nil, ""},
		{"proposal source modified", PredicateProposal, `{"workspace":"/w","patch":` + patch + `,"auditLine":` + line + `,"action":"worktree_run","sourceModified":true}`, ErrSchema, "/sourceModified"},
		{"approval ok", PredicateApproval, `{"patch":` + patch + `}`, nil, ""},
		{"approval bad digest", PredicateApproval, `{"patch":{"cid":"` + testCID + `","sha256":"XYZ"}}`, ErrSchema, "/patch/sha256"},
		{"approval extra field", PredicateApproval, `{"patch":` + patch + `,"evil":1}`, ErrSchema, "evil"},
		{"apply ok approval", PredicateApply, `{"workspace":"/w","patch":` + patch + `,"approval":"` + testCID + `","auditLine":` + line + `}`, nil, ""},
		{"apply ok single operator", PredicateApply, `{"workspace":"/w","patch":` + patch + `,"singleOperator":true,"auditLine":` + line + `}`, nil, ""},
		{"apply without approval", PredicateApply, `{"workspace":"/w","patch":` + patch + `,"auditLine":` + line + `}`, ErrSchema, ""},
		{"running-config ok", PredicateRunningConfig, `{"closure":{"cid":"` + testCID + `","rootStorePath":"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system","narHash":"sha256-AAAA"},"applies":["` + testCID + `"]}`, nil, ""},
		{"running-config bad store path", PredicateRunningConfig, `{"closure":{"cid":"` + testCID + `","rootStorePath":"/tmp/x","narHash":"sha256-AAAA"},"applies":[]}`, ErrSchema, "/closure/rootStorePath"},
		{"not json", PredicateApproval, `{"patch":`, ErrSchema, "not JSON"},
		{"unknown under prefix", PredicateTypePrefix + "merge/v1", `{}`, ErrUnknownPredicate, "merge/v1"},
		{"foreign", "https://slsa.dev/provenance/v1", `{}`, ErrUnknownPredicate, "slsa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidatePredicate(tc.typ, []byte(tc.json))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Fatalf("error %q does not mention %q", err, tc.wantIn)
			}
		})
	}
}

func TestPredicateSchemasEmbedded(t *testing.T) {
	if got := len(PredicateTypes()); got != 5 {
		t.Fatalf("%d predicate types, want 5", got)
	}
	for _, typ := range PredicateTypes() {
		b, err := PredicateSchema(typ)
		if err != nil || !strings.Contains(string(b), `"$id": "`+typ+`"`) {
			t.Errorf("%s: schema missing or $id differs (err %v)", typ, err)
		}
	}
	if _, err := compiled(); err != nil {
		t.Fatal(err)
	}
}
