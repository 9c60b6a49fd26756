package presets

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/receiver/inbound"
	"github.com/switchyard/switchyard/receiver/rawjson"
)

// twilioNormalize maps Twilio's form-encoded callbacks: the parameters
// become the data object (first value of each), the type is
// message.<MessageStatus>, call.<CallStatus> or request, the subject the
// message or call SID, and the idempotency token Twilio sends with every
// webhook identifies retries. JSON bodies are kept as data, typed by
// their "type" member.
func twilioNormalize(r *inbound.Request) (*event.Event, error) {
	id := r.Get("I-Twilio-Idempotency-Token")
	if !strings.HasPrefix(strings.ToLower(r.Get("Content-Type")), "application/x-www-form-urlencoded") {
		sh := &shape{eventType: []source{at("type")}}
		ev, err := sh.normalize(r)
		if err == nil {
			ev.ExternalID, ev.DedupKey = id, dedupKey(id, r.Body)
		}
		return ev, err
	}
	vals, err := url.ParseQuery(string(r.Body))
	if err != nil {
		return nil, fieldErr("", "form body is malformed")
	}
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := vals.Get(k); v != "" {
				return v
			}
		}
		return ""
	}
	ev := &event.Event{ReceivedAt: r.ReceivedAt, Timestamp: r.ReceivedAt}
	switch {
	case first("MessageStatus", "SmsStatus") != "":
		ev.EventType = "message." + first("MessageStatus", "SmsStatus")
	case first("CallStatus") != "":
		ev.EventType = "call." + first("CallStatus")
	default:
		ev.EventType = "request"
	}
	ev.Subject = first("MessageSid", "SmsSid", "CallSid")
	flat := make(map[string]string, len(vals))
	for k, v := range vals {
		flat[k] = v[0]
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(flat); err != nil {
		return nil, err
	}
	ev.Data = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	ev.ExternalID, ev.DedupKey = id, dedupKey(id, r.Body)
	return ev, nil
}

// telegramNormalize maps a Telegram Update: update_id identifies it, and
// its one other member names the type (message, edited_message,
// callback_query, ...) and is the data; the subject is the chat id.
func telegramNormalize(r *inbound.Request) (*event.Event, error) {
	ev := &event.Event{ReceivedAt: r.ReceivedAt, Timestamp: r.ReceivedAt}
	var id string
	it := rawjson.Members(r.Body)
	for it.Next() {
		if it.KeyIs("update_id") {
			var err error
			if id, err = rawjson.Text(it.Value()); err != nil {
				return nil, fieldErr("update_id", err.Error())
			}
			continue
		}
		if ev.EventType == "" && len(it.Value()) > 0 && it.Value()[0] == '{' {
			ev.EventType = string(it.Key())
			ev.Data = it.Value()
		}
	}
	if err := it.Err(); err != nil {
		return nil, fieldErr("", err.Error())
	}
	if id == "" {
		return nil, fieldErr("update_id", "missing: Telegram numbers every update")
	}
	if ev.EventType == "" {
		return nil, fieldErr("", "no update object (message, callback_query, ...) next to update_id")
	}
	for _, path := range [][]string{{"chat", "id"}, {"message", "chat", "id"}, {"from", "id"}} {
		if v, ok, _ := rawjson.Get(ev.Data, path...); ok {
			ev.Subject, _ = rawjson.Text(v)
			break
		}
	}
	if v, ok, _ := rawjson.Get(ev.Data, "date"); ok {
		if t, err := rawjson.Time(v, r.ReceivedAt); err == nil {
			ev.Timestamp = t
		}
	}
	ev.ExternalID, ev.DedupKey = id, dedupKey(id, r.Body)
	return ev, nil
}

var discordInteractions = map[string]string{
	"1": "ping", "2": "application_command", "3": "message_component",
	"4": "application_command_autocomplete", "5": "modal_submit",
}

// discordNormalize maps Discord's webhook events ({type: 1, event:
// {type, timestamp, data}}) to event.type, and interactions to
// interaction.<kind> with their id, data and guild or channel as subject.
func discordNormalize(r *inbound.Request) (*event.Event, error) {
	if v, ok, err := rawjson.Get(r.Body, "event", "type"); err != nil {
		return nil, fieldErr("", err.Error())
	} else if ok {
		sh := &shape{eventType: []source{at("event.type")}, timestamp: []source{at("event.timestamp")}, data: []source{at("event.data")}}
		_ = v
		return sh.normalize(r)
	}
	raw, ok, err := rawjson.Get(r.Body, "type")
	if err != nil {
		return nil, fieldErr("", err.Error())
	}
	kind, _ := rawjson.Text(raw)
	if !ok || kind == "" {
		return nil, fieldErr("type", "missing: Discord sends an interaction or event type")
	}
	if _, isEvent, _ := rawjson.Get(r.Body, "token"); !isEvent && kind == "0" {
		ev, err := (&shape{eventType: []source{at("type")}, data: []source{at("nothing")}}).normalize(r)
		if err == nil {
			ev.EventType = "webhook.ping"
		}
		return ev, err
	}
	name := discordInteractions[kind]
	if name == "" {
		name = kind
	}
	sh := &shape{eventType: []source{at("type")}, typeFunc: func(string) string { return "interaction." + name },
		id: []source{at("id")}, subject: []source{at("guild_id"), at("channel_id")}, data: []source{at("data")}}
	return sh.normalize(r)
}

// docssmithNormalize maps DocsSmith Demo2's {id, type, payload} events:
// id is the platform's event id (it deduplicates, and is kept as the
// external id), type the event type, payload the data. The subject is
// the conversation the payload belongs to: its conversation_id, or for
// conversation.* events the payload's own id. The event time is the
// payload's: created_at for *.created, updated_at (else created_at) for
// the other types; a deletion carries no time of its own, so it is the
// receive time.
func docssmithNormalize(r *inbound.Request) (*event.Event, error) {
	typ, _, _ := rawjson.Get(r.Body, "type")
	kind, _ := rawjson.Text(typ)
	sh := &shape{eventType: []source{at("type")}, id: []source{at("id")}, data: []source{at("payload")},
		subject: []source{at("payload.conversation_id")}}
	if strings.HasPrefix(kind, "conversation.") {
		sh.subject = []source{at("payload.id")}
	}
	switch {
	case strings.HasSuffix(kind, ".created"):
		sh.timestamp = []source{at("payload.created_at")}
	case strings.HasSuffix(kind, ".deleted"):
	default:
		sh.timestamp = []source{at("payload.updated_at"), at("payload.created_at")}
	}
	return sh.normalize(r)
}
