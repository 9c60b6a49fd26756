package presets

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
)

type normCase struct {
	name, provider string
	ctype          string
	header         http.Header
	body           string
	// want: eventType, subject, dedup key ("" for the body hash), data
	// prefix, timestamp (RFC 3339, "" for the receive time), the
	// platform's id ("" for none).
	eventType, subject, dedup, data, ts, external string
	// err names the field of a 400.
	err string
}

func readFile(t testing.TB, name string) string {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}

func normCases(t testing.TB) []normCase {
	return []normCase{
		{name: "chat inbox newMessage", provider: "chat-inbox", body: readFile(t, "chat_new_message.json"),
			eventType: "newMessage", subject: "bf9d96d9-e495-489a-a22a-206b0ea44d90", data: `{"message":{"sender":`, ts: "2022-01-29T07:27:52.793Z"},
		{name: "chat inbox under its old name", provider: "chat", body: readFile(t, "chat_new_message.json"),
			eventType: "newMessage", subject: "bf9d96d9-e495-489a-a22a-206b0ea44d90", data: `{"message":{"sender":`, ts: "2022-01-29T07:27:52.793Z"},
		{name: "chat inbox message without conversation", provider: "chat-inbox", body: `{"event":"newMessage","message":{"content":"hi","conversation_id":"c2"}}`,
			eventType: "newMessage", subject: "c2", data: `{"message":`},
		{name: "chat inbox without event", provider: "chat-inbox", body: `{"conversation":{"id":"c1"}}`, err: "event"},
		{name: "chat inbox array", provider: "chat-inbox", body: `[1]`, err: "event"},
		{name: "docssmith message.updated", provider: "docssmith", body: readFile(t, "docssmith_message_updated.json"),
			eventType: "message.updated", subject: "xgQQXg3hrtjh7AvZ", dedup: "id:a056V7R7NmNRjl70", external: "a056V7R7NmNRjl70",
			ts: "1991-12-08T23:00:00Z", data: `{"id":"SIuAFUNKdSYHZF2w","conversation_id"`},
		{name: "docssmith under its old name", provider: "envelope", body: readFile(t, "docssmith_message_updated.json"),
			eventType: "message.updated", subject: "xgQQXg3hrtjh7AvZ", dedup: "id:a056V7R7NmNRjl70", external: "a056V7R7NmNRjl70",
			ts: "1991-12-08T23:00:00Z", data: `{"id":"SIuAFUNKdSYHZF2w","conversation_id"`},
		{name: "docssmith conversation.updated: the payload is the conversation", provider: "docssmith",
			body:      `{"id":"e2","type":"conversation.updated","payload":{"id":"WAz8eIbvDR60rouK","created_at":692233200,"updated_at":705103200}}`,
			eventType: "conversation.updated", subject: "WAz8eIbvDR60rouK", dedup: "id:e2", external: "e2", ts: "1992-05-05T22:00:00Z", data: `{"id":"WAz8eIbvDR60rouK"`},
		{name: "docssmith message.created: its creation time", provider: "docssmith",
			body:      `{"id":"e3","type":"message.created","payload":{"id":"m1","conversation_id":"c1","created_at":692233200,"updated_at":705103200}}`,
			eventType: "message.created", subject: "c1", dedup: "id:e3", external: "e3", ts: "1991-12-08T23:00:00Z", data: `{"id":"m1"`},
		{name: "docssmith message.deleted: the receive time", provider: "docssmith",
			body:      `{"id":"e4","type":"message.deleted","payload":{"id":"m1","conversation_id":"c1","created_at":692233200,"updated_at":705103200}}`,
			eventType: "message.deleted", subject: "c1", dedup: "id:e4", external: "e4", data: `{"id":"m1"`},
		{name: "docssmith contact.created: no conversation", provider: "docssmith",
			body:      `{"id":"e5","type":"contact.created","payload":{"id":"WAz8eIbvDR60rouK","username":"KevinMcCallister","created_at":692233200}}`,
			eventType: "contact.created", dedup: "id:e5", external: "e5", ts: "1991-12-08T23:00:00Z", data: `{"id":"WAz8eIbvDR60rouK"`},
		{name: "docssmith payload not an object", provider: "docssmith", body: `{"id":"1","type":"x","payload":[1]}`, err: "payload"},
		{name: "standard webhooks", provider: "standard-webhooks", header: http.Header{"Webhook-Id": {"msg_1"}},
			body:      `{"type":"invoice.paid","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"inv_1"}}`,
			eventType: "invoice.paid", dedup: "id:msg_1", external: "msg_1", data: `{"id":"inv_1"}`, ts: "2022-11-03T20:26:10.344522Z"},
		{name: "github pull request", provider: "github", header: http.Header{"X-Github-Event": {"pull_request"}, "X-Github-Delivery": {"72d3162e"}},
			body:      `{"action":"opened","number":1,"repository":{"full_name":"octocat/Hello-World"}}`,
			eventType: "pull_request.opened", subject: "octocat/Hello-World", dedup: "id:72d3162e", external: "72d3162e", data: `{"action":"opened"`},
		{name: "github push (no action)", provider: "github", header: http.Header{"X-Github-Event": {"push"}},
			body: `{"ref":"refs/heads/main"}`, eventType: "push", data: `{"ref"`},
		{name: "github without event header", provider: "github", body: `{}`, err: "X-GitHub-Event"},
		{name: "stripe", provider: "stripe", body: `{"id":"evt_1","object":"event","type":"invoice.paid","created":1763735528,"data":{"object":{"id":"in_1"}}}`,
			eventType: "invoice.paid", subject: "in_1", dedup: "id:evt_1", external: "evt_1", data: `{"object":{"id":"in_1"}}`, ts: "2025-11-21T14:32:08Z"},
		{name: "slack event callback", provider: "slack", body: `{"type":"event_callback","team_id":"T1","event_id":"Ev1","event_time":1763735528,"event":{"type":"app_mention","text":"hi"}}`,
			eventType: "app_mention", subject: "T1", dedup: "id:Ev1", data: `{"type":"app_mention"`, ts: "2025-11-21T14:32:08Z"},
		{name: "shopify", provider: "shopify", header: http.Header{"X-Shopify-Topic": {"orders/create"}, "X-Shopify-Event-Id": {"e1"}, "X-Shopify-Triggered-At": {"2026-11-21T14:32:08Z"}},
			body: `{"id":820982911946154500,"admin_graphql_api_id":"gid://shopify/Order/1"}`, eventType: "orders.create", subject: "gid://shopify/Order/1", dedup: "id:e1", ts: "2026-11-21T14:32:08Z", data: `{"id":820982911946154500`},
		{name: "whatsapp cloud api", provider: "meta", body: `{"object":"whatsapp_business_account","entry":[{"id":"WABA1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp"}}]}]}`,
			eventType: "whatsapp_business_account.messages", subject: "WABA1", data: `{"object"`},
		{name: "twilio sms status", provider: "twilio", ctype: "application/x-www-form-urlencoded", header: http.Header{"I-Twilio-Idempotency-Token": {"tok1"}},
			body: "MessageSid=SM1&MessageStatus=delivered&To=%2B15558675310&Body=Ol%C3%A1+%3C%3E", eventType: "message.delivered", subject: "SM1", dedup: "id:tok1", external: "tok1",
			data: `{"Body":"Olá <>","MessageSid":"SM1"`},
		{name: "twilio call", provider: "twilio", ctype: "application/x-www-form-urlencoded", body: "CallSid=CA1&CallStatus=ringing", eventType: "call.ringing", subject: "CA1", data: `{"CallSid"`},
		{name: "zendesk", provider: "zendesk", body: `{"type":"zen:event-type:ticket.created","id":"z1","time":"2026-11-21T14:32:08Z","detail":{"id":"35"}}`,
			eventType: "zen:event-type:ticket.created", subject: "35", dedup: "id:z1", ts: "2026-11-21T14:32:08Z", data: `{"type"`},
		{name: "intercom", provider: "intercom", body: `{"type":"notification_event","topic":"conversation.user.created","id":"notif_1","created_at":1763735528,"data":{"item":{"id":"c1"}}}`,
			eventType: "conversation.user.created", subject: "c1", dedup: "id:notif_1", ts: "2025-11-21T14:32:08Z", data: `{"item":{"id":"c1"}}`},
		{name: "hubspot batch", provider: "hubspot", body: `[{"eventId":1,"subscriptionType":"contact.creation","objectId":123,"occurredAt":1763735528512}]`,
			eventType: "contact.creation", subject: "123", ts: "2025-11-21T14:32:08.512Z", data: `{"events":[{"eventId":1`},
		{name: "linear", provider: "linear", header: http.Header{"Linear-Delivery": {"d1"}}, body: `{"action":"create","type":"Issue","createdAt":"2026-11-21T14:32:08.000Z","data":{"id":"iss1"}}`,
			eventType: "Issue.create", subject: "iss1", dedup: "id:d1", ts: "2026-11-21T14:32:08Z", data: `{"id":"iss1"}`},
		{name: "telegram without update", provider: "telegram", body: `{"update_id":1}`, err: ""},
		{name: "discord webhook event", provider: "discord", body: `{"version":1,"application_id":"1","type":1,"event":{"type":"APPLICATION_AUTHORIZED","timestamp":"2026-11-21T14:32:08Z","data":{"user":{"id":"u"}}}}`,
			eventType: "APPLICATION_AUTHORIZED", ts: "2026-11-21T14:32:08Z", data: `{"user"`},
		{name: "darwin", provider: "darwin", body: `{"eventType":"session.opened","data":{"sessionId":"s1"}}`, eventType: "session.opened", subject: "s1", data: `{"sessionId":"s1"}`},
		{name: "not json", provider: "stripe", body: `{"type":`, err: ""},
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	for _, tc := range normCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := build(t, Settings{Provider: tc.provider, Secrets: secretsFor(tc.provider), Verify: verifyFor(tc.provider)})
			h := tc.header.Clone()
			if h == nil {
				h = http.Header{}
			}
			if tc.ctype != "" {
				h.Set("Content-Type", tc.ctype)
			}
			ev, err := src.Normalize(request(t, "POST", "https://x/hooks", []byte(tc.body), h, now))
			if tc.eventType == "" {
				if err == nil {
					t.Fatalf("accepted: %+v", ev)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to name %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			check(t, ev, tc)
		})
	}
}

func check(t *testing.T, ev *event.Event, tc normCase) {
	t.Helper()
	if ev.EventType != tc.eventType || ev.Subject != tc.subject {
		t.Errorf("type %q subject %q, want %q %q", ev.EventType, ev.Subject, tc.eventType, tc.subject)
	}
	// The platform's id is what deduplicates, unless the case says.
	wantExternal := tc.external
	if wantExternal == "" {
		wantExternal, _ = strings.CutPrefix(tc.dedup, "id:")
	}
	if ev.ExternalID != wantExternal {
		t.Errorf("external id %q, want %q", ev.ExternalID, wantExternal)
	}
	switch {
	case tc.dedup == "" && !strings.HasPrefix(ev.DedupKey, "sha256:"):
		t.Errorf("dedup key %q, want the body hash", ev.DedupKey)
	case tc.dedup != "" && ev.DedupKey != tc.dedup:
		t.Errorf("dedup key %q, want %q", ev.DedupKey, tc.dedup)
	}
	if !strings.HasPrefix(string(ev.Data), tc.data) {
		t.Errorf("data %s, want it to start with %s", ev.Data, tc.data)
	}
	wantTS := now
	if tc.ts != "" {
		wantTS, _ = time.Parse(time.RFC3339Nano, tc.ts)
	}
	if !ev.Timestamp.Equal(wantTS) {
		t.Errorf("timestamp %v, want %v", ev.Timestamp, wantTS)
	}
	if _, err := ev.Env(); err != nil {
		t.Errorf("event data does not decode for rules: %v", err)
	}
}

func secretsFor(provider string) []string {
	switch provider {
	case "chat-inbox", "chat", "discord":
		return nil
	case "standard-webhooks", "svix":
		return []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	}
	return []string{"s3cret"}
}

func verifyFor(provider string) *Verify {
	switch provider {
	case "chat-inbox", "chat":
		return &Verify{Type: "none"}
	case "docssmith", "envelope":
		return &Verify{Header: "X-DocsSmith-Demo2-Signature"}
	case "discord":
		return &Verify{PublicKeys: []string{strings.Repeat("ab", 32)}}
	}
	return nil
}
