package archive

import (
	"errors"
	"fmt"
	"strings"
)

// Query is a parsed search in the archive's search language, SQLite
// FTS4's enhanced query syntax: words (all must match), "a phrase",
// prefix*, OR, AND, NOT (binary: a NOT b), parentheses, title:word,
// summary:word. NOT binds tighter than AND, AND tighter than OR. The
// sqlite archive hands the text to FTS4 itself; the postgres archive
// translates the parsed query into a tsquery (TSQuery).
type Query struct {
	root  qnode
	terms []*qterm
}

type qnode interface{ isNode() }

type qterm struct {
	text   string // as written, without quotes, column and *
	column string // "", "title" or "summary"
	prefix bool
	index  int // in Query.terms
}

type qand struct{ kids []qnode }
type qor struct{ kids []qnode }
type qnot struct{ pos, neg qnode }

func (*qterm) isNode() {}
func (*qand) isNode()  {}
func (*qor) isNode()   {}
func (*qnot) isNode()  {}

// SearchColumns are the columns a term may name (title:word).
var SearchColumns = []string{"title", "summary"}

// QueryError is a malformed search.
type QueryError struct {
	Query string
	Msg   string
}

func (e *QueryError) Error() string { return fmt.Sprintf("search %q: %s", e.Query, e.Msg) }

// ParseQuery parses a search.
func ParseQuery(q string) (*Query, error) {
	toks, err := lexQuery(q)
	if err != nil {
		return nil, &QueryError{Query: q, Msg: err.Error()}
	}
	p := &queryParser{toks: toks, q: &Query{}}
	if len(toks) == 0 {
		return nil, &QueryError{Query: q, Msg: "nothing to search for"}
	}
	root, err := p.or()
	if err == nil && p.pos < len(p.toks) {
		err = fmt.Errorf("unexpected %s", p.toks[p.pos])
	}
	if err != nil {
		return nil, &QueryError{Query: q, Msg: err.Error()}
	}
	p.q.root = root
	return p.q, nil
}

// Terms are the query's words and phrases, as written, in order: what
// the backend folds (accents, case) before matching.
func (q *Query) Terms() []string {
	out := make([]string, len(q.terms))
	for i, t := range q.terms {
		out[i] = t.text
	}
	return out
}

// Prefixes reports, for each of Terms, whether it is a prefix search.
func (q *Query) Prefixes() []bool {
	out := make([]bool, len(q.terms))
	for i, t := range q.terms {
		out[i] = t.prefix
	}
	return out
}

// TSQuery is the query as PostgreSQL tsquery text, given its Terms as
// the archive folds them: a term is a quoted lexeme (PostgreSQL splits
// one with several words into a phrase, 'a' <-> 'b'), title: and
// summary: are the weights A and B, prefix* is :*. A term that folds to
// nothing is left out of its AND (it matches everything in FTS4) and
// matches nothing in an OR.
func (q *Query) TSQuery(folded []string) (string, error) {
	if len(folded) != len(q.terms) {
		return "", errors.New("tsquery: folded terms do not match the query")
	}
	s, ok := tsq(q.root, folded)
	if !ok {
		return "", errors.New("nothing to search for: every word folds to nothing")
	}
	return s, nil
}

func tsq(n qnode, folded []string) (string, bool) {
	switch n := n.(type) {
	case *qterm:
		text := strings.TrimSpace(folded[n.index])
		if text == "" {
			return "", false
		}
		s := "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(text) + "'"
		suffix := ""
		if n.prefix {
			suffix += "*"
		}
		switch n.column {
		case "title":
			suffix += "A"
		case "summary":
			suffix += "B"
		}
		if suffix != "" {
			s += ":" + suffix
		}
		return s, true
	case *qand:
		return tsqJoin(n.kids, folded, " & ")
	case *qor:
		return tsqJoin(n.kids, folded, " | ")
	case *qnot:
		pos, ok := tsq(n.pos, folded)
		if !ok {
			return "", false
		}
		neg, ok := tsq(n.neg, folded)
		if !ok {
			return pos, true
		}
		return "(" + pos + " & !" + neg + ")", true
	}
	return "", false
}

// tsqJoin joins the kids of an AND or an OR with op, leaving out those
// that fold to nothing; false when they all do.
func tsqJoin(kids []qnode, folded []string, op string) (string, bool) {
	var parts []string
	for _, k := range kids {
		if s, ok := tsq(k, folded); ok {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "", false
	}
	return "(" + strings.Join(parts, op) + ")", true
}

type qtokKind int

const (
	tWord qtokKind = iota
	tPhrase
	tLParen
	tRParen
	tOr
	tAnd
	tNot
)

type qtok struct {
	kind   qtokKind
	text   string
	column string
	prefix bool
}

func (t qtok) String() string {
	switch t.kind {
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tOr, tAnd, tNot:
		return t.text
	case tPhrase:
		return `"` + t.text + `"`
	}
	return fmt.Sprintf("%q", t.text)
}

func lexQuery(q string) ([]qtok, error) {
	var toks []qtok
	i := 0
	column := ""
	for i < len(q) {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, qtok{kind: tLParen})
			i++
		case c == ')':
			toks = append(toks, qtok{kind: tRParen})
			i++
		case c == '"':
			end := strings.IndexByte(q[i+1:], '"')
			if end < 0 {
				return nil, errors.New("unbalanced quote: end the phrase with \"")
			}
			text := q[i+1 : i+1+end]
			t := qtok{kind: tPhrase, column: column}
			text = strings.TrimSpace(text)
			if strings.HasSuffix(text, "*") {
				t.prefix, text = true, strings.TrimRight(text, "*")
			}
			t.text = text
			toks = append(toks, t)
			column = ""
			i += end + 2
		default:
			end := i
			for end < len(q) && !strings.ContainsRune(" \t\n\r()\"", rune(q[end])) {
				end++
			}
			word := q[i:end]
			i = end
			if name, rest, ok := strings.Cut(word, ":"); ok && isSearchColumn(name) {
				if rest == "" && i < len(q) && q[i] == '"' {
					column = name // title:"a phrase"
					continue
				}
				if rest != "" {
					word = rest
					toks = append(toks, wordTok(word, name))
					continue
				}
			}
			switch word {
			case "OR":
				toks = append(toks, qtok{kind: tOr, text: word})
			case "AND":
				toks = append(toks, qtok{kind: tAnd, text: word})
			case "NOT":
				toks = append(toks, qtok{kind: tNot, text: word})
			default:
				toks = append(toks, wordTok(word, ""))
			}
		}
	}
	return toks, nil
}

func wordTok(word, column string) qtok {
	t := qtok{kind: tWord, column: column}
	if strings.HasSuffix(word, "*") {
		t.prefix, word = true, strings.TrimRight(word, "*")
	}
	t.text = word
	return t
}

func isSearchColumn(name string) bool {
	for _, c := range SearchColumns {
		if c == name {
			return true
		}
	}
	return false
}

type queryParser struct {
	toks []qtok
	pos  int
	q    *Query
}

func (p *queryParser) peek() (qtok, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return qtok{}, false
}

// or := and ("OR" and)*
func (p *queryParser) or() (qnode, error) {
	first, err := p.and()
	if err != nil {
		return nil, err
	}
	kids := []qnode{first}
	for {
		t, ok := p.peek()
		if !ok || t.kind != tOr {
			break
		}
		p.pos++
		n, err := p.and()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &qor{kids: kids}, nil
}

// and := not (["AND"] not)*
func (p *queryParser) and() (qnode, error) {
	first, err := p.not()
	if err != nil {
		return nil, err
	}
	kids := []qnode{first}
	for {
		t, ok := p.peek()
		if !ok || t.kind == tOr || t.kind == tRParen {
			break
		}
		if t.kind == tAnd {
			p.pos++
		}
		n, err := p.not()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &qand{kids: kids}, nil
}

// not := primary ("NOT" primary)*
func (p *queryParser) not() (qnode, error) {
	n, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || t.kind != tNot {
			return n, nil
		}
		p.pos++
		neg, err := p.primary()
		if err != nil {
			return nil, err
		}
		n = &qnot{pos: n, neg: neg}
	}
}

// primary := "(" or ")" | word | phrase
func (p *queryParser) primary() (qnode, error) {
	t, ok := p.peek()
	if !ok {
		return nil, errors.New("unexpected end of the search: a word is missing")
	}
	p.pos++
	switch t.kind {
	case tLParen:
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if t, ok := p.peek(); !ok || t.kind != tRParen {
			return nil, errors.New(`unbalanced parenthesis: close it with ")"`)
		}
		p.pos++
		return n, nil
	case tWord, tPhrase:
		term := &qterm{text: t.text, column: t.column, prefix: t.prefix, index: len(p.q.terms)}
		p.q.terms = append(p.q.terms, term)
		return term, nil
	}
	return nil, fmt.Errorf("unexpected %s: a word or a phrase must come first", t)
}
