package archive

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestQueryTSQuery parses the search language and translates it to a
// tsquery, folding terms with Fold as the postgres archive's SQL
// function does.
func TestQueryTSQuery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		query, want string
		terms       []string
	}{
		{"reembolso", "'reembolso'", []string{"reembolso"}},
		{"Sessão", "'sessao'", nil},
		{"reembolso OR refund", "('reembolso' | 'refund')", nil},
		{"sao paulo", "('sao' & 'paulo')", nil},
		{"sao AND paulo", "('sao' & 'paulo')", nil},
		{`"sessão transferida"`, "'sessao transferida'", []string{"sessão transferida"}},
		{"refun*", "'refun':*", []string{"refun"}},
		{"title:mariana", "'mariana':A", nil},
		{"summary:refun*", "'refun':*B", nil},
		{`title:"Mariana Costa"`, "'mariana costa':A", nil},
		{"(reembolso OR refund) NOT deposit", "(('reembolso' | 'refund') & !'deposit')", nil},
		{"a OR b c", "('a' | ('b' & 'c'))", nil},
		{"a b OR c", "(('a' & 'b') | 'c')", nil},
		{"a NOT b c", "(('a' & !'b') & 'c')", nil},
		{"98765-4321", "'98765 4321'", nil}, // one term: a phrase of two words
		{"d'água", "'d agua'", nil},
		{"other:word", "'other word'", []string{"other:word"}}, // not a column: text
		{"or and", "('or' & 'and')", nil},                      // operators are upper case
		{"it's", "'it s'", nil},
		{`back\slash`, `'back slash'`, nil},
		{"- reembolso", "('reembolso')", nil}, // a term of punctuation only matches everything
	} {
		q, err := ParseQuery(tc.query)
		if err != nil {
			t.Errorf("ParseQuery(%q) = %v", tc.query, err)
			continue
		}
		if tc.terms != nil && !slices.Equal(q.Terms(), tc.terms) {
			t.Errorf("ParseQuery(%q).Terms() = %q, want %q", tc.query, q.Terms(), tc.terms)
		}
		var folded []string
		for _, term := range q.Terms() {
			folded = append(folded, Fold(term))
		}
		got, err := q.TSQuery(folded)
		if err != nil || got != tc.want {
			t.Errorf("TSQuery(%q) = %q, %v; want %q", tc.query, got, err, tc.want)
		}
	}
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ query, msg string }{
		{`"unbalanced`, "unbalanced quote"},
		{"", "nothing to search for"},
		{"   ", "nothing to search for"},
		{"(a OR b", "unbalanced parenthesis"},
		{"a OR", "a word is missing"},
		{"NOT a", "a word or a phrase must come first"},
		{"a )", `unexpected ")"`},
		{"OR", "a word or a phrase must come first"},
	} {
		_, err := ParseQuery(tc.query)
		var qe *QueryError
		if !errors.As(err, &qe) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseQuery(%q) = %v; want a QueryError saying %q", tc.query, err, tc.msg)
		}
	}
	q, _ := ParseQuery("- ?")
	if _, err := q.TSQuery([]string{Fold("-"), Fold("?")}); err == nil {
		t.Error("a search of punctuation only gave a tsquery")
	}
}

func TestFold(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Sessão transferida, São Paulo!": "sessao transferida  sao paulo ",
		"ÀÉÎÕÜ Ç ñ Ø ł":                  "aeiou c n o l",
		"+55 11 98765-4321":              " 55 11 98765 4321",
		"ana@example.com":                "ana example com",
		"“citação” – ok…":                " citacao    ok ",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
	if n, m := len([]rune(accentFrom)), len([]rune(accentTo)); n != m {
		t.Errorf("accent table: %d letters map to %d", n, m)
	}
}

func TestSnippet(t *testing.T) {
	t.Parallel()
	summary := "Cliente pediu REEMBOLSO do sinal; sessão transferida para a gerência em São Paulo."
	long := "Um dois três quatro cinco seis sete oito nove dez onze doze treze catorze quinze dezesseis dezessete reembolso dezenove vinte vinte-e-um vinte-e-dois."
	for _, tc := range []struct {
		name     string
		texts    []string
		terms    []string
		prefixes []bool
		want     string
	}{
		{"accents and case", []string{"Mariana Costa", summary}, []string{"reembolso", "sessao"}, []bool{false, false},
			"Cliente pediu [REEMBOLSO] do sinal; [sessão] transferida para a gerência em São Paulo."},
		{"title wins", []string{"Mariana Costa", summary}, []string{"mariana"}, []bool{false},
			"[Mariana] Costa"},
		{"prefix", []string{"", "Customer asked for a refund."}, []string{"refun"}, []bool{true},
			"Customer asked for a [refund]."},
		{"long text is cut around the match", []string{"", long}, []string{"reembolso"}, []bool{false},
			"…onze doze treze catorze quinze dezesseis dezessete [reembolso] dezenove vinte vinte-e-um vinte-e-dois."},
		{"no match: the start", []string{"Ana Lima", ""}, []string{"x"}, []bool{false}, "Ana Lima"},
	} {
		if got := Snippet(tc.texts, tc.terms, tc.prefixes); got != tc.want {
			t.Errorf("%s: Snippet = %q, want %q", tc.name, got, tc.want)
		}
	}
}
