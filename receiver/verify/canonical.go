package verify

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/switchyard/switchyard/receiver/rawjson"
)

// Canonical returns body as JavaScript's JSON.stringify(JSON.parse(body))
// would write it, for senders whose documentation signs that rather than
// the bytes they send: no whitespace outside strings, keys in their
// order, strings re-escaped the way JSON.stringify escapes them (only
// '"', '\\' and control characters; "\u00e3" becomes "ã", "\/" becomes
// "/"). Numbers are kept as written: JSON.stringify would also rewrite
// 1.0 as 1 and 1e2 as 100, which this does not attempt. ok is false when
// body is not valid JSON.
func Canonical(body []byte) (out []byte, ok bool) {
	if !rawjson.Valid(body) {
		return nil, false
	}
	out = make([]byte, 0, len(body))
	for i := 0; i < len(body); {
		c := body[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			i++
		case '"':
			var n int
			out, n = appendString(out, body[i:])
			i += n
		default:
			out = append(out, c)
			i++
		}
	}
	return out, true
}

// appendString re-escapes the valid JSON string at the start of s and
// returns how many bytes it took.
func appendString(out, s []byte) ([]byte, int) {
	out = append(out, '"')
	i := 1
	for {
		c := s[i]
		switch {
		case c == '"':
			return append(out, '"'), i + 1
		case c == '\\':
			e := s[i+1]
			switch e {
			case 'u':
				r := hex4(s[i+2 : i+6])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if r2 := hex4(s[i+2 : i+6]); utf16.DecodeRune(r, r2) != utf8.RuneError {
							out = utf8.AppendRune(out, utf16.DecodeRune(r, r2))
							i += 6
							continue
						}
					}
					// A lone surrogate: JSON.stringify writes it escaped.
					out = append(out, `\u`...)
					out = append(out, []byte(strconv.FormatInt(int64(r)|0x10000, 16))[1:]...)
					continue
				}
				out = appendRune(out, r)
			case 'b':
				out, i = append(out, `\b`...), i+2
			case 'f':
				out, i = append(out, `\f`...), i+2
			case 'n':
				out, i = append(out, `\n`...), i+2
			case 'r':
				out, i = append(out, `\r`...), i+2
			case 't':
				out, i = append(out, `\t`...), i+2
			case '"':
				out, i = append(out, `\"`...), i+2
			case '\\':
				out, i = append(out, `\\`...), i+2
			default: // '/'
				out, i = append(out, e), i+2
			}
		default:
			out = append(out, c)
			i++
		}
	}
}

// appendRune writes r as JSON.stringify does: control characters
// escaped, the rest as UTF-8.
func appendRune(out []byte, r rune) []byte {
	switch r {
	case '"':
		return append(out, `\"`...)
	case '\\':
		return append(out, `\\`...)
	case '\b':
		return append(out, `\b`...)
	case '\f':
		return append(out, `\f`...)
	case '\n':
		return append(out, `\n`...)
	case '\r':
		return append(out, `\r`...)
	case '\t':
		return append(out, `\t`...)
	}
	if r < 0x20 {
		const hexDigits = "0123456789abcdef"
		return append(out, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
	}
	return utf8.AppendRune(out, r)
}

func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}
