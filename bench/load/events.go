package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/receiver/darwin"
)

// Sizes of generated bodies, in bytes: the range issue 3 asks for.
const (
	minSize = 512
	maxSize = 2048
)

// signedEvent is one request ready to send: a body and its X-Signature.
type signedEvent struct {
	Body      []byte
	Signature string
}

// The ids the fixtures share: every generated event gets its own, so the
// gateway's dedup (SHA-256 of the body) never collapses two of them.
var fixtureIDs = []string{
	"6651a0e7c4b2f81d9a3e5c10", // conversationId
	"6651a0e7c4b2f81d9a3e5c11", // sessionId
	"6651a0e7c4b2f81d9a3e5c12", // conversationThreadId
	"6651a3b9c4b2f81d9a3e5d77", // functionCallId
}

var (
	timestampField = regexp.MustCompile(`"timestamp":"[^"]*"`)
	titleField     = regexp.MustCompile(`"conversationTitle":"[^"]*"`)
	summaryField   = regexp.MustCompile(`"summary":"(?:[^"\\]|\\.)*"`)
)

var (
	firstNames = []string{"Mariana", "João", "Ana", "Pedro", "Luíza", "Rafael", "Camila", "Thiago", "Beatriz", "Gustavo", "Fernanda", "Lucas"}
	lastNames  = []string{"Costa", "Pereira", "Silva", "Oliveira", "Souza", "Lima", "Carvalho", "Gonçalves", "Ribeiro", "Almeida"}
	// Free text that pads bodies to their target size: no quotes,
	// backslashes or <>&, so its JSON encoding is the text itself.
	sentences = []string{
		"Cliente procura apartamento de 2 quartos na Zona Sul, até R$ 650 mil, com vaga de garagem.",
		"Pediu reembolso do sinal pago em duplicidade e quer falar com a gerência.",
		"Agendou visita ao imóvel AP-2291 para segunda-feira às 15h.",
		"Perguntou sobre financiamento pela Caixa e uso do FGTS na entrada.",
		"Prefere contato por WhatsApp depois das 18h; não atende ligações no horário comercial.",
		"Já visitou dois imóveis da concorrência e achou o condomínio caro.",
		"Sessão transferida para a supervisora após reclamação sobre atraso na resposta.",
		"Interessada em imóveis perto do metrô, com varanda e aceita pets.",
		"Solicitou a planta do apartamento e o valor do IPTU.",
		"Lead qualificado: renda comprovada, pré-aprovação bancária em andamento.",
	}
)

// loadFixtures reads the Darwin events in dir (testdata/darwin).
func loadFixtures(dir string) ([][]byte, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no fixtures in %s (run from the repository root or set -fixtures)", dir)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, bytes.TrimSpace(b))
	}
	return out, nil
}

// generate returns n distinct Darwin events signed with secret, built
// from the fixtures: each gets its own ids, timestamp and conversation
// title, and a summary sized so that bodies spread evenly over
// 0.5–2 KB. The same seed gives the same events.
func generate(fixtures [][]byte, n int, secret []byte, seed uint64) ([]signedEvent, error) {
	r := rand.New(rand.NewPCG(seed, 3))
	base := time.Date(2026, 11, 21, 13, 0, 0, 0, time.UTC)
	out := make([]signedEvent, n)
	for i := range out {
		b := bytes.Clone(fixtures[i%len(fixtures)])
		for k, id := range fixtureIDs {
			b = bytes.ReplaceAll(b, []byte(id), fmt.Appendf(nil, "%08x%016x", 0x6652000+k, uint64(i)))
		}
		ts := base.Add(time.Duration(i) * 37 * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
		b = timestampField.ReplaceAll(b, []byte(`"timestamp":"`+ts+`"`))
		name := fmt.Sprintf("%s %s (+55 11 9%04d-%04d)", pick(r, firstNames), pick(r, lastNames), r.IntN(10000), r.IntN(10000))
		b = titleField.ReplaceAll(b, []byte(`"conversationTitle":"`+name+`"`))

		// Pad with a summary to a size drawn from [minSize, maxSize].
		b = summaryField.ReplaceAll(b, nil) // leaves `,,` or `,}`: fixed below
		b = bytes.ReplaceAll(b, []byte(",,"), []byte(","))
		b = bytes.ReplaceAll(b, []byte(",}"), []byte("}"))
		const field = `,"summary":""`
		want := minSize + r.IntN(maxSize-minSize+1)
		text := summary(r, want-len(b)-len(field))
		// data is the last member: its closing brace is the second-last byte.
		at := len(b) - 2
		b = slices.Insert(b, at, []byte(`,"summary":"`+text+`"`)...)

		if !json.Valid(b) {
			return nil, fmt.Errorf("event %d is not valid JSON: %s", i, b)
		}
		out[i] = signedEvent{Body: b, Signature: darwin.Sign(secret, b)}
	}
	return out, nil
}

// summary returns size bytes of sentences (cut at a rune boundary and
// padded with dots), or one whole sentence when size is not positive.
func summary(r *rand.Rand, size int) string {
	var sb strings.Builder
	for sb.Len() < size || sb.Len() == 0 {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(pick(r, sentences))
	}
	s := sb.String()
	if size <= 0 {
		return s
	}
	s = s[:size]
	for !utf8.ValidString(s) { // a multi-byte rune was cut: drop its start
		s = s[:len(s)-1]
	}
	return s + strings.Repeat(".", size-len(s))
}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }
