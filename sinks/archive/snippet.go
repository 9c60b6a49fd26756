package archive

import (
	"strings"
)

// snippetWords is how many words a snippet shows, as the sqlite
// archive's snippet(…, 16).
const snippetWords = 16

// Snippet shows where texts (a session's title and summary) match:
// up to 16 words of the text with the most matches, around them, the
// matching words in [brackets], "…" where the text is cut. terms are
// the search's terms as folded (FoldSQL), prefixes which are prefix
// searches.
func Snippet(texts []string, terms []string, prefixes []bool) string {
	type word struct {
		text   string
		prefix bool
	}
	var want []word
	for i, t := range terms {
		ws := Words(Fold(t))
		for j, sp := range ws {
			want = append(want, word{Fold(t)[sp.Start:sp.End], prefixes[i] && j == len(ws)-1})
		}
	}
	matches := func(w string) bool {
		w = Fold(w)
		for _, q := range want {
			if w == q.text || (q.prefix && strings.HasPrefix(w, q.text)) {
				return true
			}
		}
		return false
	}
	best, bestText, bestStart := -1, -1, 0
	var bestSpans []Span
	var bestHit []bool
	for ti, text := range texts {
		spans := Words(text)
		if len(spans) == 0 {
			continue
		}
		hit := make([]bool, len(spans))
		for i, sp := range spans {
			hit[i] = matches(text[sp.Start:sp.End])
		}
		// The window of snippetWords words with the most matches.
		n, start, top := 0, 0, -1
		for i := range spans {
			if hit[i] {
				n++
			}
			if i >= snippetWords && hit[i-snippetWords] {
				n--
			}
			if s := max(0, i-snippetWords+1); n > top {
				top, start = n, s
				if top > 0 && i < snippetWords {
					start = 0
				}
			}
		}
		if top > best {
			best, bestText, bestStart, bestSpans, bestHit = top, ti, start, spans, hit
		}
	}
	if bestText < 0 {
		return ""
	}
	text, spans := texts[bestText], bestSpans
	end := min(len(spans), bestStart+snippetWords)
	// Center the matches when the window can move: start a few words
	// before the first match rather than many.
	if first := firstTrue(bestHit[bestStart:end]); first > 4 && end < len(spans) {
		shift := min(first-4, len(spans)-end)
		bestStart += shift
		end += shift
	}
	var b strings.Builder
	if bestStart > 0 {
		b.WriteString("…")
	}
	from := spans[bestStart].Start
	if bestStart == 0 {
		from = 0
	}
	for i := bestStart; i < end; i++ {
		sp := spans[i]
		b.WriteString(text[from:sp.Start])
		if bestHit[i] {
			b.WriteString("[" + text[sp.Start:sp.End] + "]")
		} else {
			b.WriteString(text[sp.Start:sp.End])
		}
		from = sp.End
	}
	if end < len(spans) {
		b.WriteString("…")
	} else {
		b.WriteString(text[from:])
	}
	return b.String()
}

func firstTrue(bs []bool) int {
	for i, b := range bs {
		if b {
			return i
		}
	}
	return 0
}
