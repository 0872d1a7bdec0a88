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
	clo := `{"cid":"` + testCID + `","rootStorePath":"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system","narHash":"sha256-AAAA"}`
	src := `{"narHash":"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","rev":"0123456789abcdef0123456789abcdef01234567","nar":"` + testCID + `"}`
	top := `{"attr":"nixosConfigurations.n.config.system.build.toplevel","drvPath":"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system.drv","outPath":"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system"}`
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
		{"running-config/v2 ok", PredicateRunningConfigV2, `{"closure":` + clo + `,"configuration":{"workspace":"/w","source":` + src + `,"extends":{"genesis":` + src + `},"applies":[],"toplevel":` + top + `},"generation":3}`, nil, ""},
		{"running-config/v2 extends ok", PredicateRunningConfigV2, `{"closure":` + clo + `,"configuration":{"workspace":"/w","source":` + src + `,"extends":{"runningConfig":"` + testCID + `"},"applies":["` + testCID + `"],"toplevel":` + top + `,"drift":["modules/x.nix"]}}`, nil, ""},
		{"running-config/v2 rollback ok", PredicateRunningConfigV2, `{"closure":` + clo + `,"configuration":{"workspace":"/w","source":` + src + `,"extends":{"runningConfig":"` + testCID + `","rollbackTo":"` + testCID + `"},"applies":[],"toplevel":` + top + `}}`, nil, ""},
		{"running-config/v2 unproven ok", PredicateRunningConfigV2, `{"closure":` + clo + `,"unproven":"no workspace configured"}`, nil, ""},
		{"running-config/v2 neither", PredicateRunningConfigV2, `{"closure":` + clo + `}`, ErrSchema, ""},
		{"running-config/v2 both", PredicateRunningConfigV2, `{"closure":` + clo + `,"unproven":"x","configuration":{"workspace":"/w","source":` + src + `,"extends":{"genesis":` + src + `},"applies":[],"toplevel":` + top + `}}`, ErrSchema, ""},
		{"running-config/v2 genesis and previous", PredicateRunningConfigV2, `{"closure":` + clo + `,"configuration":{"workspace":"/w","source":` + src + `,"extends":{"genesis":` + src + `,"runningConfig":"` + testCID + `"},"applies":[],"toplevel":` + top + `}}`, ErrSchema, "/configuration/extends"},
		{"running-config/v2 bad nar hash", PredicateRunningConfigV2, `{"closure":` + clo + `,"configuration":{"workspace":"/w","source":{"narHash":"sha256:abc","nar":"` + testCID + `"},"extends":{"runningConfig":"` + testCID + `"},"applies":[],"toplevel":` + top + `}}`, ErrSchema, "/configuration/source/narHash"},
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
	if got := len(PredicateTypes()); got != 6 {
		t.Fatalf("%d predicate types, want 6", got)
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
