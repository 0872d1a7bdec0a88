package attest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// This file holds the statement decoder used on the verification hot path.
// It decodes JSON text in one pass into the values encoding/json produces
// for an `any` target (map[string]any, []any, string, float64, bool, nil),
// accepting exactly the texts encoding/json accepts (FuzzDecodeJSON checks
// both agree on every input). Strings with escapes or non-ASCII bytes are
// unquoted by encoding/json itself, so their meaning cannot drift.

var errJSONSyntax = errors.New("invalid JSON")

// jsonDecoder decodes one JSON text.
type jsonDecoder struct {
	b   []byte
	i   int
	err error
}

func (d *jsonDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w at offset %d: %s", errJSONSyntax, d.i, fmt.Sprintf(format, args...))
	}
}

func (d *jsonDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// decodeJSON decodes b, which must hold exactly one JSON value (with
// optional surrounding whitespace).
func decodeJSON(b []byte) (any, error) {
	d := &jsonDecoder{b: b}
	v := d.value(0)
	d.ws()
	if d.err == nil && d.i != len(d.b) {
		d.fail("data after the value")
	}
	return v, d.err
}

// maxJSONDepth bounds nesting, as encoding/json does (10000).
const maxJSONDepth = 10000

func (d *jsonDecoder) value(depth int) any {
	if depth > maxJSONDepth {
		d.fail("exceeded max depth")
		return nil
	}
	d.ws()
	if d.err != nil || d.i >= len(d.b) {
		d.fail("unexpected end of input")
		return nil
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		d.i++
		arr := []any{}
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == ']' {
			d.i++
			return arr
		}
		for d.err == nil {
			arr = append(arr, d.value(depth+1))
			d.ws()
			if d.i >= len(d.b) {
				d.fail("unterminated array")
				break
			}
			if d.b[d.i] == ',' {
				d.i++
				continue
			}
			if d.b[d.i] == ']' {
				d.i++
				break
			}
			d.fail("want , or ] in array")
		}
		return arr
	case c == '"':
		return d.str()
	case c == 't':
		return d.lit("true", true)
	case c == 'f':
		return d.lit("false", false)
	case c == 'n':
		return d.lit("null", nil)
	case c == '-' || c >= '0' && c <= '9':
		return d.num()
	default:
		d.fail("unexpected character %q", c)
		return nil
	}
}

func (d *jsonDecoder) object(depth int) map[string]any {
	d.i++ // {
	m := map[string]any{}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m
	}
	for d.err == nil {
		k, _, _ := d.member(depth, func(k string, v any) { m[k] = v })
		_ = k
		d.ws()
		if d.i >= len(d.b) {
			d.fail("unterminated object")
			break
		}
		if d.b[d.i] == ',' {
			d.i++
			continue
		}
		if d.b[d.i] == '}' {
			d.i++
			break
		}
		d.fail("want , or } in object")
	}
	return m
}

// member decodes `"key": value` and hands both to set; it returns the key
// and the offsets of the value's text.
func (d *jsonDecoder) member(depth int, set func(string, any)) (key string, start, end int) {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		d.fail("want object key")
		return "", 0, 0
	}
	key = d.str()
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != ':' {
		d.fail("want : after object key")
		return "", 0, 0
	}
	d.i++
	d.ws()
	start = d.i
	v := d.value(depth + 1)
	end = d.i
	if d.err == nil {
		set(key, v)
	}
	return key, start, end
}

func (d *jsonDecoder) lit(word string, v any) any {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		d.fail("invalid literal")
		return nil
	}
	d.i += len(word)
	return v
}

func (d *jsonDecoder) str() string {
	start := d.i
	d.i++ // opening quote
	simple := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if simple {
				return string(d.b[start+1 : d.i-1])
			}
			var s string
			if err := json.Unmarshal(d.b[start:d.i], &s); err != nil {
				d.fail("string: %v", err)
			}
			return s
		case c == '\\':
			simple = false
			d.i += 2 // the escape's shape is checked by encoding/json above
			continue
		case c < 0x20:
			d.fail("control character in string")
			return ""
		case c >= utf8.RuneSelf:
			simple = false
		}
		d.i++
	}
	d.fail("unterminated string")
	return ""
}

func (d *jsonDecoder) num() any {
	start := d.i
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.b[d.i] == '-' {
		d.i++
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		d.fail("invalid number")
		return nil
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			d.fail("invalid number")
			return nil
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			d.fail("invalid number")
			return nil
		}
	}
	f, err := strconv.ParseFloat(string(d.b[start:d.i]), 64)
	if err != nil {
		d.fail("number %s: %v", d.b[start:d.i], err)
		return nil
	}
	return f
}

// decodeStatementFast decodes an in-toto statement in one pass: the
// top-level members _type, subject, predicateType and predicate by exact
// name (the last of repeated members wins, other members are ignored), the
// predicate both as a decoded value and as its exact text. Members of the
// wrong JSON type fail; null leaves a member unset.
func decodeStatementFast(b []byte) (*Statement, any, error) {
	d := &jsonDecoder{b: b}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return nil, nil, fmt.Errorf("%w: statement is not a JSON object", errJSONSyntax)
	}
	d.i++
	st := &Statement{}
	var pred any
	var rawStart, rawEnd int
	var typeErr error
	set := func(k string, v any) {
		switch k {
		case "_type":
			st.Type, typeErr = asString(k, v, typeErr)
		case "predicateType":
			st.PredicateType, typeErr = asString(k, v, typeErr)
		case "subject":
			st.Subject, typeErr = asSubjects(v, typeErr)
		case "predicate":
			pred = v
		}
	}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
	} else {
		for d.err == nil {
			k, s, e := d.member(0, set)
			if k == "predicate" && d.err == nil {
				rawStart, rawEnd = s, e
			}
			d.ws()
			if d.i >= len(d.b) {
				d.fail("unterminated object")
				break
			}
			if d.b[d.i] == ',' {
				d.i++
				continue
			}
			if d.b[d.i] == '}' {
				d.i++
				break
			}
			d.fail("want , or } in object")
		}
	}
	d.ws()
	if d.err == nil && d.i != len(d.b) {
		d.fail("data after the value")
	}
	if d.err != nil {
		return nil, nil, d.err
	}
	if typeErr != nil {
		return nil, nil, typeErr
	}
	if pred != nil {
		st.Predicate = json.RawMessage(b[rawStart:rawEnd:rawEnd])
	}
	return st, pred, nil
}

func asString(k string, v any, prev error) (string, error) {
	if prev != nil {
		return "", prev
	}
	switch s := v.(type) {
	case string:
		return s, nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("%s: want a string, got %T", k, v)
}

func asSubjects(v any, prev error) ([]ResourceDescriptor, error) {
	if prev != nil || v == nil {
		return nil, prev
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("subject: want an array, got %T", v)
	}
	out := make([]ResourceDescriptor, 0, len(arr))
	for i, e := range arr {
		if e == nil {
			out = append(out, ResourceDescriptor{})
			continue
		}
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("subject[%d]: want an object, got %T", i, e)
		}
		var rd ResourceDescriptor
		var err error
		for k, f := range m {
			switch k {
			case "name":
				rd.Name, err = asString("subject.name", f, err)
			case "uri":
				rd.URI, err = asString("subject.uri", f, err)
			case "mediaType":
				rd.MediaType, err = asString("subject.mediaType", f, err)
			case "digest":
				if f == nil {
					continue
				}
				dm, ok := f.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("subject[%d].digest: want an object, got %T", i, f)
				}
				rd.Digest = make(map[string]string, len(dm))
				for alg, h := range dm {
					hs, ok := h.(string)
					if !ok {
						return nil, fmt.Errorf("subject[%d].digest.%s: want a string, got %T", i, alg, h)
					}
					rd.Digest[alg] = hs
				}
			case "annotations":
				if f == nil {
					continue
				}
				am, ok := f.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("subject[%d].annotations: want an object, got %T", i, f)
				}
				rd.Annotations = am
			}
			if err != nil {
				return nil, fmt.Errorf("subject[%d]: %w", i, err)
			}
		}
		out = append(out, rd)
	}
	return out, nil
}
