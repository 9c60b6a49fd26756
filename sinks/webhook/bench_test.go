package webhook

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/sinks"
)

// BenchmarkRender measures what each attempt pays before the network:
// decoding the event's data, rendering the URL and headers, the body,
// and the Standard Webhooks signature.
func BenchmarkRender(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"default", Options{URL: "https://crm.example.com/in"}},
		{"template_body_signed", Options{
			URL:         "https://crm.example.com/contacts/{{ data.sessionId }}",
			Headers:     map[string]string{"Authorization": "Bearer tok-1", "X-Agent": "{{ agentName }}"},
			ContentType: "application/json",
			Body:        `{"phone": "{{ data.sessionId }}", "note": "{{ data.summary }}", "by": "{{ data.forwardedToName }}"}`,
			Sign:        &Sign{Scheme: SchemeStandardWebhooks, Secrets: []string{specSecret}},
		}},
		{"object_body_signed", Options{
			URL:  "https://crm.example.com/contacts/{{ data.sessionId }}",
			Body: `{"contact": {"phone": data.sessionId, "note": data.summary}, "source": "darwin"}`,
			Sign: &Sign{Scheme: SchemeStandardWebhooks, Secrets: []string{specSecret}},
		}},
		{"cloudevents_hmac", Options{
			URL: "https://bus.example.com/events", Format: FormatCloudEvents,
			Sign: &Sign{Scheme: SchemeHMAC, Header: "X-Signature", Secrets: []string{"darwin-secret"}},
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ev, _ := escalated(b)
			opts := bc.opts
			opts.Now = func() time.Time { return signedAt }
			s := mustNew(b, opts)
			d := &sinks.Delivery{ID: "dlv_01JDELIVERY00000000000042", Attempt: 1, Event: ev}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Render(d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
