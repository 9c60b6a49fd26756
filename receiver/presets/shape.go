package presets

import (
	"encoding/json"
	"strings"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/receiver/darwin"
	"github.com/switchyard/switchyard/receiver/inbound"
	"github.com/switchyard/switchyard/receiver/rawjson"
)

// A source picks a value from a request: a header, or a JSON path into
// the body ("data.object.id", "entry.0.id"). The first of several that
// is present wins.
type source struct {
	header string
	path   []string
}

func hdr(name string) source { return source{header: name} }
func at(path string) source  { return source{path: strings.Split(path, ".")} }

// shape is a normalizer described as data: where each field of the
// event comes from. Payloads must be JSON; data must be an object.
type shape struct {
	eventType []source // required
	// suffix, when present, is appended to the type after a dot
	// (GitHub's action: "pull_request" + "opened").
	suffix    []source
	typeFunc  func(string) string // rewrites the type, when set
	id        []source
	subject   []source
	timestamp []source
	agentID   []source
	agentName []source
	// data is where the data object is; nil means the whole body.
	data []source
	// dataExcept keeps the whole body minus these top-level members.
	dataExcept []string
	// wrap puts data under this key: {"events": [...]} for bodies that
	// are arrays.
	wrap string
}

// fieldErr is a 400 naming the field.
func fieldErr(field, msg string) error { return &inbound.FieldError{Field: field, Msg: msg} }

// pick returns the raw value of the first present source, and its name
// for messages.
func pick(r *inbound.Request, srcs []source) (raw []byte, name string, err error) {
	for _, s := range srcs {
		if s.header != "" {
			if v := r.Get(s.header); v != "" {
				// Headers are text: quote so callers treat them as JSON strings.
				return quote(v), s.header, nil
			}
			continue
		}
		v, found, err := rawjson.Get(r.Body, s.path...)
		if err != nil {
			return nil, "", fieldErr("", err.Error())
		}
		if found && !rawjson.IsNull(v) {
			return v, strings.Join(s.path, "."), nil
		}
	}
	if len(srcs) > 0 {
		return nil, srcName(srcs[0]), nil
	}
	return nil, "", nil
}

func srcName(s source) string {
	if s.header != "" {
		return s.header
	}
	return strings.Join(s.path, ".")
}

func quote(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

func (sh *shape) text(r *inbound.Request, srcs []source) (string, error) {
	raw, name, err := pick(r, srcs)
	if err != nil {
		return "", err
	}
	s, err := rawjson.Text(raw)
	if err != nil {
		return "", fieldErr(name, err.Error())
	}
	return s, nil
}

func (sh *shape) normalize(r *inbound.Request) (*event.Event, error) {
	body := r.Body
	if !rawjson.Valid(body) {
		return nil, fieldErr("", rawjson.ErrSyntax.Error())
	}
	ev := &event.Event{ReceivedAt: r.ReceivedAt, Timestamp: r.ReceivedAt}
	var err error
	if ev.EventType, err = sh.text(r, sh.eventType); err != nil {
		return nil, err
	}
	if ev.EventType == "" {
		return nil, fieldErr(srcName(sh.eventType[0]), "missing: the event type comes from here")
	}
	if sh.suffix != nil {
		suffix, err := sh.text(r, sh.suffix)
		if err != nil {
			return nil, err
		}
		if suffix != "" {
			ev.EventType += "." + suffix
		}
	}
	if sh.typeFunc != nil {
		ev.EventType = sh.typeFunc(ev.EventType)
	}
	id, err := sh.text(r, sh.id)
	if err != nil {
		return nil, err
	}
	if ev.Subject, err = sh.text(r, sh.subject); err != nil {
		return nil, err
	}
	if ev.AgentID, err = sh.text(r, sh.agentID); err != nil {
		return nil, err
	}
	if ev.AgentName, err = sh.text(r, sh.agentName); err != nil {
		return nil, err
	}
	if raw, name, err := pick(r, sh.timestamp); err != nil {
		return nil, err
	} else if raw != nil {
		if ev.Timestamp, err = rawjson.Time(raw, r.ReceivedAt); err != nil {
			return nil, fieldErr(name, err.Error())
		}
	}
	if ev.Data, err = sh.dataOf(r); err != nil {
		return nil, err
	}
	ev.ExternalID = id
	ev.DedupKey = dedupKey(id, body)
	return ev, nil
}

func (sh *shape) dataOf(r *inbound.Request) ([]byte, error) {
	var data []byte
	name := "body"
	switch {
	case len(sh.dataExcept) > 0:
		var err error
		if data, err = except(r.Body, sh.dataExcept); err != nil {
			return nil, fieldErr("", err.Error())
		}
	case len(sh.data) > 0:
		raw, n, err := pick(r, sh.data)
		if err != nil {
			return nil, err
		}
		data, name = raw, n
	default:
		data = trimJSON(r.Body)
	}
	if sh.wrap != "" {
		out := make([]byte, 0, len(data)+len(sh.wrap)+5)
		out = append(out, '{')
		out = append(out, quote(sh.wrap)...)
		out = append(out, ':')
		out = append(out, data...)
		return append(out, '}'), nil
	}
	if len(data) > 0 && data[0] != '{' && !rawjson.IsNull(data) {
		return nil, fieldErr(name, "must be a JSON object")
	}
	if rawjson.IsNull(data) {
		return nil, nil
	}
	return data, nil
}

// except returns the object body without the named top-level members,
// the others kept as written.
func except(body []byte, names []string) ([]byte, error) {
	out := []byte{'{'}
	it := rawjson.Members(body)
	for it.Next() {
		skip := false
		for _, n := range names {
			if it.KeyIs(n) {
				skip = true
			}
		}
		if skip {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, it.Key()...)
		out = append(out, '"', ':')
		out = append(out, it.Value()...)
	}
	if it.Err() != nil {
		return nil, it.Err()
	}
	return append(out, '}'), nil
}

func trimJSON(b []byte) []byte {
	v, _, _ := rawjson.Get(b)
	return v
}

// dedupKey is the provider's event id when it sends one, so its retries
// are recognized even if the body changed; else the body's hash.
func dedupKey(id string, body []byte) string {
	if id != "" {
		return "id:" + id
	}
	return darwin.DedupKey(body)
}
