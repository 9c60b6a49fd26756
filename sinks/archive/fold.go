package archive

import (
	"strings"
	"unicode"
)

// Accented Latin letters (Latin-1 Supplement, Latin Extended-A and B)
// and their base letters, rune for rune: Unicode's canonical
// decompositions, plus the letters with a stroke (ø, đ, ł, …) that have
// none. The postgres archive folds with PostgreSQL's unaccent
// extension when it can, else with this table (FoldSQL); Fold uses it
// to find matches in snippets.
const (
	accentFrom = "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳØøĐđĦħıŁłŦŧƀƗɃ"
	accentTo   = "AAAAAACEEEEIIIINOOOOOUUUUYaaaaaaceeeeiiiinooooouuuuyyAaAaAaCcCcCcCcDdEeEeEeEeEeGgGgGgGgHhIiIiIiIiIJjKkLlLlLlNnNnNnOoOoOoRrRrRrSsSsSsSsTtTtUuUuUuUuUuUuWwYyYZzZzZzOoUuAaIiOoUuUuUuUuUuAaAaGgKkOoOojGgNnAaAaAaEeEeIiIiOoOoRrRrUuUuSsTtHhAaEeOoOoOoOoYyOoDdHhiLlTtbIB"
)

// punctuation separates words, as SQLite's unicode61 tokenizer treats
// it: folding turns it into spaces, so that PostgreSQL's parser reads
// plain words (not e-mail addresses, URLs, signed or decimal numbers,
// which it would keep whole, and which FTS4 splits).
const punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡§«¶·»¿‐‑‒–—―‘’‚‛“”„‟†‡•…‰′″‹›\u00a0\u2009\u200b"

var folder = func() *strings.Replacer {
	var pairs []string
	to := []rune(accentTo)
	for i, r := range []rune(accentFrom) {
		pairs = append(pairs, string(r), string(to[i]))
	}
	for _, r := range punctuation {
		pairs = append(pairs, string(r), " ")
	}
	return strings.NewReplacer(pairs...)
}()

// Fold is what matching ignores: accents (with the table above), case,
// and punctuation (spaces).
func Fold(s string) string {
	return strings.Map(unicode.ToLower, folder.Replace(s))
}

// FoldSQL returns the body of an immutable SQL function folding its
// text argument $1 as Fold does: with the unaccent extension installed
// in schema unaccentSchema, or with the table above when it is "".
// Names are qualified, so the function works whatever the search_path.
func FoldSQL(unaccentSchema string) string {
	spaces := strings.Repeat(" ", len([]rune(punctuation)))
	var inner string
	if unaccentSchema != "" {
		schema := `"` + strings.ReplaceAll(unaccentSchema, `"`, `""`) + `"`
		inner = schema + ".unaccent(" + sqlString(schema+".unaccent") + "::regdictionary, $1)"
	} else {
		inner = "translate($1, " + sqlString(accentFrom) + ", " + sqlString(accentTo) + ")"
	}
	return "SELECT lower(translate(" + inner + ", " + sqlString(punctuation) + ", " + sqlString(spaces) + "))"
}

// sqlString is s as an SQL string literal (standard_conforming_strings).
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Words splits text into its words: runs of letters, digits and marks.
func Words(text string) []Span {
	var out []Span
	start := -1
	for i, r := range text {
		word := unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
		switch {
		case word && start < 0:
			start = i
		case !word && start >= 0:
			out = append(out, Span{start, i})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, Span{start, len(text)})
	}
	return out
}

// Span is a word's byte offsets in its text.
type Span struct{ Start, End int }
