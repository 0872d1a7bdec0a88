package audit

import (
	"encoding/json"
)

// parseFast decodes the keys Entry needs from one audit line without
// encoding/json's reflection, for the common shape Agentix writes: a flat
// object whose known keys hold plain values. It accepts only input that
// encoding/json also accepts and decodes to the same Entry; on anything
// else — a known key repeated, with an unexpected type, or a key that
// encoding/json's case-insensitive matching could map to a field — it
// returns ok false and the caller falls back to encoding/json, which
// produces the exact error. resultString reports whether the "result" key
// holds a string. The Time field is left to the caller.
func parseFast(raw []byte) (e Entry, resultString, ok bool) {
	p := fastParser{b: raw}
	p.ws()
	if !p.eat('{') {
		return e, false, false
	}
	var seen uint32
	p.ws()
	if p.eat('}') {
		return e, false, p.end()
	}
	for {
		p.ws()
		key, plain := p.str()
		if !plain {
			return e, false, false
		}
		p.ws()
		if !p.eat(':') {
			return e, false, false
		}
		p.ws()
		f := fieldOf(key)
		if f >= 0 {
			if seen&(1<<f) != 0 {
				return e, false, false
			}
			seen |= 1 << f
			if !p.field(&e, f, &resultString) {
				return e, false, false
			}
		} else {
			if mayFold(key) || !p.skip(0) {
				return e, false, false
			}
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return e, resultString, p.end()
		}
		return e, false, false
	}
}

// Known keys, in the order of fieldOf's results.
var fastKeys = [...]string{"timestamp", "action", "result", "path", "patch", "proposal_saved", "mode", "goal",
	"request", "execute", "source_modified", "switched_system", "requires_sudo", "approval_required", "policy_violations"}

func fieldOf(k []byte) int {
	for i, n := range fastKeys {
		if string(k) == n {
			return i
		}
	}
	return -1
}

// mayFold reports whether encoding/json could match key to a field
// case-insensitively (it folds ASCII letters and a few non-ASCII runes).
func mayFold(k []byte) bool {
	for _, c := range k {
		if c >= 0x80 || c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *fastParser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// str reads a string without escapes or non-ASCII bytes and returns its
// contents; plain is false for anything else (the position is then
// meaningless).
func (p *fastParser) str() (s []byte, plain bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s = p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// skipStr skips any valid JSON string.
func (p *fastParser) skipStr() bool {
	if !p.eat('"') {
		return false
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return false
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if p.i+4 >= len(p.b) {
					return false
				}
				for _, h := range p.b[p.i+1 : p.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				p.i += 4
			default:
				return false
			}
		}
		p.i++
	}
	return false
}

func (p *fastParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func digit(c byte) bool { return c >= '0' && c <= '9' }

func (p *fastParser) num() bool {
	p.eat('-')
	switch {
	case p.eat('0'):
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		for p.i < len(p.b) && digit(p.b[p.i]) {
			p.i++
		}
	default:
		return false
	}
	if p.eat('.') {
		n := p.i
		for p.i < len(p.b) && digit(p.b[p.i]) {
			p.i++
		}
		if p.i == n {
			return false
		}
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		n := p.i
		for p.i < len(p.b) && digit(p.b[p.i]) {
			p.i++
		}
		if p.i == n {
			return false
		}
	}
	return true
}

// skip skips any valid JSON value (nesting bounded; deeper input falls
// back to encoding/json).
func (p *fastParser) skip(depth int) bool {
	if depth > 64 || p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.skipStr()
	case c == '{':
		p.i++
		p.ws()
		if p.eat('}') {
			return true
		}
		for {
			p.ws()
			if !p.skipStr() {
				return false
			}
			p.ws()
			if !p.eat(':') {
				return false
			}
			p.ws()
			if !p.skip(depth + 1) {
				return false
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			return p.eat('}')
		}
	case c == '[':
		p.i++
		p.ws()
		if p.eat(']') {
			return true
		}
		for {
			p.ws()
			if !p.skip(depth + 1) {
				return false
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			return p.eat(']')
		}
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	case c == '-' || digit(c):
		return p.num()
	}
	return false
}

// strVal reads a string value: plain ones directly, others (escapes,
// non-ASCII) through encoding/json so that their decoding is identical.
func (p *fastParser) strVal() (string, bool) {
	start := p.i
	if s, plain := p.str(); plain {
		return string(s), true
	}
	p.i = start
	if !p.skipStr() {
		return "", false
	}
	var s string
	if json.Unmarshal(p.b[start:p.i], &s) != nil {
		return "", false
	}
	return s, true
}

// field decodes the value of known key f into e.
func (p *fastParser) field(e *Entry, f int, resultString *bool) bool {
	if p.lit("null") {
		// encoding/json leaves a non-pointer field unchanged on null and
		// sets a pointer or slice to nil.
		return true
	}
	switch {
	case f <= 8: // strings
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return false
		}
		s, ok := p.strVal()
		if !ok {
			return false
		}
		switch f {
		case 0:
			e.Timestamp = s
		case 1:
			e.Action = s
		case 2:
			e.Result = s
			*resultString = true
		case 3:
			e.Path = &s
		case 4:
			e.Patch = &s
		case 5:
			e.ProposalSaved = &s
		case 6:
			e.Mode = &s
		case 7:
			e.Goal = &s
		case 8:
			e.Request = &s
		}
		return true
	case f <= 13: // bools
		var v bool
		switch {
		case p.lit("true"):
			v = true
		case p.lit("false"):
		default:
			return false
		}
		switch f {
		case 9:
			e.Execute = &v
		case 10:
			e.SourceModified = &v
		case 11:
			e.SwitchedSystem = &v
		case 12:
			e.RequiresSudo = &v
		case 13:
			e.ApprovalRequired = &v
		}
		return true
	default: // policy_violations: array of strings
		if !p.eat('[') {
			return false
		}
		out := []string{}
		p.ws()
		if p.eat(']') {
			e.PolicyViolations = out
			return true
		}
		for {
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return false
			}
			s, ok := p.strVal()
			if !ok {
				return false
			}
			out = append(out, s)
			p.ws()
			if p.eat(',') {
				continue
			}
			if !p.eat(']') {
				return false
			}
			e.PolicyViolations = out
			return true
		}
	}
}
