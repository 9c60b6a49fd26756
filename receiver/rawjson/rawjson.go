// Package rawjson reads the few fields a normalizer needs straight from
// the bytes of a JSON body, without decoding the rest: values come back
// as slices of the body, so a payload's data object can be kept byte for
// byte. Everything it accepts, encoding/json accepts too (a differential
// fuzz test holds it to that).
package rawjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors of Members and Get.
var (
	ErrSyntax    = errors.New("body is not valid JSON")
	ErrNotObject = errors.New("body must be a JSON object")
)

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// Valid reports whether b is exactly one JSON value, with optional
// surrounding whitespace.
func Valid(b []byte) bool {
	i := ws(b, 0)
	end, ok := skip(b, i, 0)
	return ok && ws(b, end) == len(b)
}

// Iter walks the members of one JSON object, validating it as it goes.
// Use it as
//
//	it := rawjson.Members(body)
//	for it.Next() { use it.Key(), it.KeyIs("x"), it.Value() }
//	if err := it.Err(); err != nil { ... }
type Iter struct {
	b        []byte
	i        int
	key, val []byte
	quoted   []byte // the key with its quotes
	escaped  bool
	state    uint8 // 0 before '{', 1 inside, 2 after '}' (trailing check), 3 done
	err      error
}

// Members returns an iterator over the object b (surrounding whitespace
// allowed).
func Members(b []byte) Iter { return Iter{b: b} }

func (it *Iter) fail(err error) bool {
	it.err, it.state, it.key, it.val = err, 3, nil, nil
	return false
}

// Next advances to the next member; false at the end or on an error.
func (it *Iter) Next() bool {
	b := it.b
	switch it.state {
	case 3:
		return false
	case 0:
		i := ws(b, 0)
		if i >= len(b) {
			return it.fail(ErrSyntax)
		}
		if b[i] != '{' {
			if Valid(b) {
				return it.fail(ErrNotObject)
			}
			return it.fail(ErrSyntax)
		}
		i = ws(b, i+1)
		if i < len(b) && b[i] == '}' {
			it.i, it.state = i+1, 2
			return it.Next()
		}
		it.i, it.state = i, 1
	case 2:
		if ws(b, it.i) != len(b) {
			return it.fail(ErrSyntax)
		}
		it.state, it.key, it.val = 3, nil, nil
		return false
	}
	// state 1: at a member's key.
	i := it.i
	if i >= len(b) || b[i] != '"' {
		return it.fail(ErrSyntax)
	}
	end, escaped, ok := skipString(b, i)
	if !ok {
		return it.fail(ErrSyntax)
	}
	key := b[i+1 : end-1]
	i = ws(b, end)
	if i >= len(b) || b[i] != ':' {
		return it.fail(ErrSyntax)
	}
	i = ws(b, i+1)
	vend, ok := skip(b, i, 1)
	if !ok {
		return it.fail(ErrSyntax)
	}
	val := b[i:vend]
	i = ws(b, vend)
	switch {
	case i < len(b) && b[i] == ',':
		i = ws(b, i+1)
		if i >= len(b) || b[i] != '"' {
			return it.fail(ErrSyntax)
		}
	case i < len(b) && b[i] == '}':
		i++
		it.state = 2
	default:
		return it.fail(ErrSyntax)
	}
	it.i, it.key, it.quoted, it.val, it.escaped = i, key, b[end-len(key)-2:end], val, escaped
	return true
}

// Err returns the error that stopped the iteration, if any.
func (it *Iter) Err() error { return it.err }

// Key returns the current key as written, without quotes; escapes are
// not decoded (see KeyIs).
func (it *Iter) Key() []byte { return it.key }

// KeyIs reports whether the current key is name, decoding escapes.
func (it *Iter) KeyIs(name string) bool {
	if !it.escaped {
		return string(it.key) == name
	}
	s, err := String(it.quoted)
	return err == nil && s == name
}

// Value returns the current member's value as written.
func (it *Iter) Value() []byte { return it.val }

// Get returns the value at path inside the JSON value b: object keys,
// or decimal indexes into arrays. found is false when a step is absent
// or not an object or array; err is set when b is not valid JSON.
func Get(b []byte, path ...string) (val []byte, found bool, err error) {
	val = trim(b)
	if len(path) == 0 {
		if !Valid(val) {
			return nil, false, ErrSyntax
		}
		return val, true, nil
	}
	for _, step := range path {
		if len(val) == 0 {
			return nil, false, nil
		}
		switch val[0] {
		case '{':
			var next []byte
			it := Members(val)
			for it.Next() {
				if it.KeyIs(step) {
					next = it.Value() // the last one wins, as in encoding/json
				}
			}
			if it.Err() != nil {
				return nil, false, it.Err()
			}
			if next == nil {
				return nil, false, nil
			}
			val = next
		case '[':
			n, convErr := strconv.Atoi(step)
			if convErr != nil || n < 0 {
				return nil, false, nil
			}
			elem, ok, arrErr := index(val, n)
			if arrErr != nil {
				return nil, false, arrErr
			}
			if !ok {
				return nil, false, nil
			}
			val = elem
		default:
			if !Valid(val) {
				return nil, false, ErrSyntax
			}
			return nil, false, nil
		}
	}
	return val, true, nil
}

// index returns the n-th element of the array a.
func index(a []byte, n int) ([]byte, bool, error) {
	if !Valid(a) {
		return nil, false, ErrSyntax
	}
	i := ws(a, 1)
	if a[i] == ']' {
		return nil, false, nil
	}
	for k := 0; ; k++ {
		end, _ := skip(a, i, 1)
		if k == n {
			return a[i:end], true, nil
		}
		i = ws(a, end)
		if a[i] == ']' {
			return nil, false, nil
		}
		i = ws(a, i+1) // ','
	}
}

// Elements returns the elements of the array a, or ok false when a is not
// an array.
func Elements(a []byte) (elems [][]byte, ok bool) {
	a = trim(a)
	if len(a) == 0 || a[0] != '[' || !Valid(a) {
		return nil, false
	}
	i := ws(a, 1)
	if a[i] == ']' {
		return nil, true
	}
	for {
		end, _ := skip(a, i, 1)
		elems = append(elems, a[i:end])
		i = ws(a, end)
		if a[i] == ']' {
			return elems, true
		}
		i = ws(a, i+1)
	}
}

func trim(b []byte) []byte {
	i := ws(b, 0)
	j := len(b)
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// IsNull reports whether raw is absent or null.
func IsNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

// String decodes a JSON string value.
func String(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", errors.New("must be a string")
	}
	inner := raw[1 : len(raw)-1]
	if !hasEscapeOrBadUTF8(inner) {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errors.New("invalid string")
	}
	return s, nil
}

func hasEscapeOrBadUTF8(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c >= utf8.RuneSelf {
			return c == '\\' || !utf8.Valid(b)
		}
	}
	return false
}

// Text reads a JSON string or number as text; null and absent are "".
func Text(raw []byte) (string, error) {
	if IsNull(raw) {
		return "", nil
	}
	switch raw[0] {
	case '"':
		return String(raw)
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	}
	return "", errors.New("must be a string or a number")
}

var layouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999", // no zone: UTC
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// Time reads a JSON time: RFC 3339 text (a few near variants too), or a
// Unix time in seconds or, when too large to be seconds (after year
// 5138), milliseconds. Absent and null give fallback.
func Time(raw []byte, fallback time.Time) (time.Time, error) {
	if IsNull(raw) {
		return fallback, nil
	}
	if raw[0] == '"' {
		s, err := String(raw)
		if err != nil {
			return time.Time{}, err
		}
		return ParseTime(s)
	}
	n, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return time.Time{}, errors.New("must be RFC 3339 text or a Unix time in seconds or milliseconds")
	}
	return Unix(n)
}

// ParseTime parses RFC 3339 text, or a Unix time in seconds or
// milliseconds written as digits.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range layouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if n, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && s != "" && s[0] >= '0' && s[0] <= '9' {
		return Unix(n)
	}
	return time.Time{}, fmt.Errorf("cannot read %q as a time: want RFC 3339, such as 2026-01-02T15:04:05Z", s)
}

// Unix reads seconds, or milliseconds when n is too large to be seconds.
func Unix(n float64) (time.Time, error) {
	if n < 0 || n >= 1e15 || n != n {
		return time.Time{}, errors.New("must be RFC 3339 text or a Unix time in seconds or milliseconds")
	}
	if n >= 1e11 {
		return time.UnixMilli(int64(n)).UTC(), nil
	}
	sec := int64(n)
	return time.Unix(sec, int64((n-float64(sec))*1e9)).UTC(), nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func ws(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skip returns the offset just past the value starting at b[i].
func skip(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; c {
	case '"':
		end, _, ok := skipString(b, i)
		return end, ok
	case '{':
		if depth >= maxDepth {
			return i, false
		}
		i = ws(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			end, _, ok := skipString(b, i)
			if !ok {
				return i, false
			}
			i = ws(b, end)
			if i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = skip(b, ws(b, i+1), depth+1); !ok {
				return i, false
			}
			i = ws(b, i)
			if i >= len(b) {
				return i, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = ws(b, i+1)
		}
	case '[':
		if depth >= maxDepth {
			return i, false
		}
		i = ws(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skip(b, i, depth+1); !ok {
				return i, false
			}
			i = ws(b, i)
			if i >= len(b) {
				return i, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = ws(b, i+1)
		}
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return skipNumber(b, i)
		}
		return i, false
	}
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func skipNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, false
	case b[i] == '0':
		i++
	case isDigit(b[i]):
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, true
}

// skipString returns the offset just past the string starting at b[i]
// (a '"'), and whether it holds escapes.
func skipString(b []byte, i int) (end int, escaped, ok bool) {
	i++
	for i < len(b) {
		// Most bytes need no attention: skip them in a tight loop.
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, escaped, false
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return i, escaped, false
					}
				}
				i += 6
			default:
				return i, escaped, false
			}
		case c < 0x20:
			return i, escaped, false
		default:
			i++
		}
	}
	return i, escaped, false
}

// plain marks the bytes a string may hold as they are: not '"', not
// '\\', not a control character.
var plain = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
