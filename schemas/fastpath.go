package schemas

import (
	"encoding/json"
	"math"
	"time"
)

// Fast path of ValidatePredicateValue.
//
// The JSON Schemas in predicates/ are the definition of a valid predicate.
// Validating one with the general validator costs more than half of what a
// signature check does, so the five predicate types have a hand-written
// check, fastValid, that answers only "certainly valid" or "don't know":
//
//   - fastValid(t, v) == true implies the schema of t accepts v (soundness).
//     It is written keyword by keyword from the schema files and accepts
//     only a conservative subset (e.g. integers only as float64 or plain
//     digit json.Number, timestamps only as YYYY-MM-DDTHH:MM:SSZ).
//   - When it answers false, the full validator decides and produces the
//     error message; so every value is still judged by the JSON Schema.
//
// TestFastPathAgrees and FuzzFastPath check soundness against the compiled
// schemas on generated and fuzzed values, and that every well-formed
// predicate this module writes takes the fast path. A change to a schema
// file must be mirrored here (TestFastPathSchemaDigest names the files).
//
// It is not a JSON reader: it sees only values the strict decoder
// (ValidatePredicate, attest's statement decoding) produced, where a
// repeated member name has already failed, and it matches member names
// exactly, so a case variant such as "SourceModified" is an unknown member
// (answer: don't know; the closed schema refuses it). FuzzFastPath seeds
// both kinds. BenchmarkValidatePredicate measures what it saves.

type fieldCheck func(v any) bool

// object reports whether v is a JSON object whose members are all in
// fields (additionalProperties: false), each passing its check, with every
// required member present.
func object(v any, fields map[string]fieldCheck, required ...string) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, r := range required {
		if _, ok := m[r]; !ok {
			return false
		}
	}
	for k, x := range m {
		f, ok := fields[k]
		if !ok || !f(x) {
			return false
		}
	}
	return true
}

func isString(v any) bool { _, ok := v.(string); return ok }
func isBool(v any) bool   { _, ok := v.(bool); return ok }

// isNonEmpty: type string, minLength 1.
func isNonEmpty(v any) bool { s, ok := v.(string); return ok && s != "" }

// isNonNegInt: type integer, minimum 0.
func isNonNegInt(v any) bool {
	switch n := v.(type) {
	case float64:
		return n >= 0 && n <= 1<<53 && n == math.Trunc(n)
	case json.Number:
		s := string(n)
		if s == "" || len(s) > 15 || (len(s) > 1 && s[0] == '0') {
			return false
		}
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	return false
}

func lowerHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// isCID: $defs/cid, pattern ^(b[a-z2-7]{20,}|Qm[1-9A-HJ-NP-Za-km-z]{44})$.
func isCID(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	switch {
	case len(s) >= 21 && s[0] == 'b':
		return allBytes(s[1:], func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '2' && c <= '7' })
	case len(s) == 46 && s[0] == 'Q' && s[1] == 'm':
		return allBytes(s[2:], func(c byte) bool {
			return c >= '1' && c <= '9' || c >= 'A' && c <= 'H' || c >= 'J' && c <= 'N' ||
				c >= 'P' && c <= 'Z' || c >= 'a' && c <= 'k' || c >= 'm' && c <= 'z'
		})
	}
	return false
}

// isSHA256: $defs/sha256, pattern ^[0-9a-f]{64}$.
func isSHA256(v any) bool {
	s, ok := v.(string)
	return ok && len(s) == 64 && allBytes(s, lowerHex)
}

// isStorePath: $defs/storePath,
// pattern ^/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+$.
func isStorePath(v any) bool {
	s, ok := v.(string)
	const pre = "/nix/store/"
	if !ok || len(s) < len(pre)+34 || s[:len(pre)] != pre || s[len(pre)+32] != '-' {
		return false
	}
	h, name := s[len(pre):len(pre)+32], s[len(pre)+33:]
	return allBytes(h, func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' && c != 'e' && c != 'o' && c != 'u' && c != 't'
	}) && allBytes(name, func(c byte) bool {
		return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '+' || c == '.' || c == '_' || c == '?' || c == '=' || c == '-'
	})
}

// isNarHash: pattern ^sha256[:-][A-Za-z0-9+/=]+$.
func isNarHash(v any) bool {
	s, ok := v.(string)
	if !ok || len(s) < 8 || s[:6] != "sha256" || (s[6] != ':' && s[6] != '-') {
		return false
	}
	return allBytes(s[7:], func(c byte) bool {
		return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
	})
}

// isCommit: pattern ^[0-9a-f]{40}([0-9a-f]{24})?$.
func isCommit(v any) bool {
	s, ok := v.(string)
	return ok && (len(s) == 40 || len(s) == 64) && allBytes(s, lowerHex)
}

// isTimestamp: $defs/timestamp (format date-time), accepting only
// YYYY-MM-DDTHH:MM:SSZ with a real calendar date and time.
func isTimestamp(v any) bool {
	s, ok := v.(string)
	if !ok || len(s) != 20 {
		return false
	}
	t, err := time.Parse("2006-01-02T15:04:05Z", s)
	return err == nil && t.Format("2006-01-02T15:04:05Z") == s
}

func arrayOf(item fieldCheck) fieldCheck {
	return func(v any) bool {
		a, ok := v.([]any)
		if !ok {
			return false
		}
		for _, x := range a {
			if !item(x) {
				return false
			}
		}
		return true
	}
}

func enum(vals ...string) fieldCheck {
	return func(v any) bool {
		s, ok := v.(string)
		if !ok {
			return false
		}
		for _, x := range vals {
			if s == x {
				return true
			}
		}
		return false
	}
}

// $defs/patchRef and $defs/auditLine.
var (
	patchRefFields  = map[string]fieldCheck{"cid": isCID, "sha256": isSHA256, "path": isNonEmpty}
	auditLineFields = map[string]fieldCheck{"snapshot": isCID, "line": isNonNegInt}
)

func isPatchRef(v any) bool  { return object(v, patchRefFields, "cid", "sha256") }
func isAuditLine(v any) bool { return object(v, auditLineFields, "snapshot", "line") }

var (
	proposalFields = map[string]fieldCheck{
		"workspace": isNonEmpty, "patch": isPatchRef, "auditLine": isAuditLine,
		"action": enum("controller_run", "worktree_run"), "mode": isString, "goal": isString,
		"sourceModified": func(v any) bool { b, ok := v.(bool); return ok && !b },
	}
	approvalFields = map[string]fieldCheck{"patch": isPatchRef, "proposal": isCID, "comment": isString}
	applyFields    = map[string]fieldCheck{
		"workspace": isNonEmpty, "patch": isPatchRef, "approval": isCID, "singleOperator": isBool, "auditLine": isAuditLine,
	}
	snapshotFields  = map[string]fieldCheck{"cid": isCID, "size": isNonNegInt, "root": isSHA256}
	violationFields = map[string]fieldCheck{"line": isNonNegInt, "rule": isNonEmpty, "message": isString}
	boundaryFields  = map[string]fieldCheck{
		"policy": isSHA256, "passed": isBool, "singleOperator": isBool,
		"violations": arrayOf(func(v any) bool { return object(v, violationFields, "line", "rule") }),
	}
	auditLogFields = map[string]fieldCheck{
		"workspace": isNonEmpty,
		"snapshot":  func(v any) bool { return object(v, snapshotFields, "cid", "size", "root") },
		"boundary":  func(v any) bool { return object(v, boundaryFields, "passed", "violations") },
		"time":      isTimestamp,
	}
	closureFields       = map[string]fieldCheck{"cid": isCID, "rootStorePath": isStorePath, "narHash": isNarHash}
	runningConfigFields = map[string]fieldCheck{
		"closure":      func(v any) bool { return object(v, closureFields, "cid", "rootStorePath", "narHash") },
		"configCommit": isCommit, "applies": arrayOf(isCID), "generation": isNonNegInt, "time": isTimestamp,
	}
)

// fastValid reports whether v is certainly valid under predicateType's
// schema (false: don't know; the full validator decides).
func fastValid(predicateType string, v any) bool {
	switch predicateType {
	case PredicateProposal:
		return object(v, proposalFields, "workspace", "patch", "auditLine", "action", "sourceModified")
	case PredicateApproval:
		return object(v, approvalFields, "patch")
	case PredicateApply:
		if !object(v, applyFields, "workspace", "patch", "auditLine") {
			return false
		}
		m := v.(map[string]any)
		_, hasApproval := m["approval"]
		single, _ := m["singleOperator"].(bool)
		return hasApproval || single // anyOf
	case PredicateAuditLog:
		return object(v, auditLogFields, "workspace", "snapshot", "boundary")
	case PredicateRunningConfig:
		return object(v, runningConfigFields, "closure", "applies")
	}
	return false
}
