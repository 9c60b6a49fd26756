package app

import (
	"os"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/sinks/slack"
)

// TestBuildPreviewIncludesHeldSinks: the example configuration holds
// ops-slack and crm; Build leaves them out, BuildPreview builds them so
// that switchyard test can show what they would send.
func TestBuildPreviewIncludesHeldSinks(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("../config.example.yaml", data, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	names := func(p *Plan) []string {
		var out []string
		for _, s := range p.Sinks {
			out = append(out, s.Name)
		}
		return out
	}
	p, err := Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if got := names(p); !slices.Equal(got, []string{"archive"}) || !slices.Equal(p.Held, []string{"ops-slack", "crm"}) {
		t.Fatalf("Build: sinks %v, held %v", got, p.Held)
	}
	pp, err := BuildPreview(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pp.Close()
	if got := names(pp); !slices.Equal(got, []string{"ops-slack", "archive", "crm"}) || !slices.Equal(pp.Held, p.Held) {
		t.Fatalf("BuildPreview: sinks %v, held %v", got, pp.Held)
	}
	ev := &event.Event{ID: "evt_1", Source: "darwin", EventType: "session.forwarded.escalated", Subject: "s1", Data: []byte(`{"sessionId":"s1","forwardType":"escalated"}`)}
	for _, s := range pp.Sinks {
		pv, ok := s.Sink.(interface {
			Preview(*event.Event) (any, error)
		})
		if !ok {
			t.Fatalf("%s has no Preview", s.Name)
		}
		if out, err := pv.Preview(ev); err != nil || out == nil {
			t.Errorf("%s: Preview = %v, %v", s.Name, out, err)
		}
	}
}

// TestBuildPreviewHeldBotSink: a held slack sink in bot mode (a channel,
// no token yet) previews too, with its channel.
func TestBuildPreviewHeldBotSink(t *testing.T) {
	t.Parallel()
	y := `sources: [{name: d, provider: darwin, secret: x}]
sinks:
  - name: s
    type: slack
    token: ${T:-}
    channel: '{{ data.channelName == "Vendas" ? "#sales" : "#support" }}'
    group: {by: data.forwardedToName, wait: 30s}
routes: [{name: r, match: ["*"], to: [s]}]
`
	cfg, err := config.Parse("c.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p, err := BuildPreview(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out, err := p.Sinks[0].Sink.(interface {
		Preview(*event.Event) (any, error)
	}).Preview(&event.Event{EventType: "x", Data: []byte(`{"channelName":"Vendas"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if m := out.(*slack.Message); m.Channel != "#sales" {
		t.Fatalf("message %+v", m)
	}
}
