// Package presets is the catalogue of senders Switchyard knows by name:
// for each provider, how its requests are verified (as a verify.*
// configuration) and how its payloads map to the event model. A source's
// own verify: block overrides a preset's settings one by one, and map:
// replaces its normalization.
package presets

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/receiver/darwin"
	"github.com/switchyard/switchyard/receiver/inbound"
	"github.com/switchyard/switchyard/receiver/mapping"
	"github.com/switchyard/switchyard/receiver/verify"
)

// Verify is a source's verify: block. Zero fields keep the preset's.
type Verify struct {
	// Type is hmac, token, basic, ed25519 or none.
	Type            string
	Header          string
	Algorithm       string
	Encoding        string
	Prefix          string
	Signed          string
	TimestampHeader string
	IDHeader        string
	Tolerance       time.Duration
	// Query carries a token when it is not in a header.
	Query    string
	Username string
	// PublicKeys verify ed25519 signatures.
	PublicKeys []string
	// PublicURL is the scheme and host senders post to, for {url}.
	PublicURL string
	// VerifyToken answers Meta's subscription check (GET hub.challenge).
	// It is not part of the signature scheme: only presets with a GET
	// challenge accept it.
	VerifyToken string
}

// Settings is what building a source needs from its configuration.
type Settings struct {
	Provider string
	Secrets  []string
	Verify   *Verify
	Map      map[string]string
	// Subject, when set, is an expression over the normalized event
	// giving its subject in place of the provider's.
	Subject        string
	CanonicalJSON  bool
	IPAllow        []string
	TrustedProxies []string
}

// Source is a built source's behaviour.
type Source struct {
	Verifier  verify.Verifier
	Normalize func(r *inbound.Request) (*event.Event, error)
	// Unauthenticated is set for verify type none: the caller warns.
	Unauthenticated bool
	// sign signs a request as the sender would (see Sign).
	sign func([]byte, SignOptions) (*Outgoing, error)
	// Renamed is the provider's name now, when the configuration used
	// the name it had before (still accepted): the caller warns.
	Renamed string
	// Handshake, when set, answers a verified request that sets the
	// webhook up (Slack's url_verification, Discord's PING) instead of
	// its becoming an event; it returns nil for ordinary events and an
	// *inbound.FieldError for a malformed handshake.
	Handshake func(r *inbound.Request) (*Reply, error)
	// Challenge, when set, answers GET requests on the source's path
	// (Meta's subscription check). Its errors are verify errors,
	// ErrNoVerifyToken, or an *inbound.FieldError.
	Challenge func(r *inbound.Request) (*Reply, error)
}

// Error is a setting that cannot work. Field is its path within the
// source's configuration ("provider", "secret", "verify.header",
// "map.eventType"); Line and Column, when set, are inside an expression.
type Error struct {
	Field        string
	Msg          string
	Line, Column int
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }

type preset struct {
	verify *Verify // the scheme; nil: the platform signs nothing
	format verify.Format
	// bodyHash is Twilio's bodySHA256 query parameter.
	bodyHash string
	// millis: the timestamp header is Unix milliseconds (HubSpot).
	millis bool
	// secret decodes a configured secret into the key (Standard Webhooks'
	// whsec_ base64); the bytes of the text by default.
	secret    func(string) ([]byte, error)
	normalize func(r *inbound.Request) (*event.Event, error)
	// needs explains a verify: block the preset cannot do without.
	needs string
	// handshake answers the platform's setup POSTs (see Source).
	handshake func(r *inbound.Request) (*Reply, error)
	// challenge: the platform checks the endpoint with Meta's GET
	// hub.challenge, answered with verify.verify_token.
	challenge bool
	// bodyTimestamp names a top-level body member holding the send time
	// in Unix milliseconds, checked against the tolerance
	// (bodyTolerance unless verify.tolerance is set).
	bodyTimestamp string
	bodyTolerance time.Duration
}

// Platform is how a provider's product calls itself and what its
// events' subject is, for messages a person reads ("Open in Darwin",
// "session 6651…").
type Platform struct {
	// Name is the product's name; empty for providers without one
	// (custom).
	Name string
	// Subject names what an event's subject is: "session",
	// "conversation"; "subject" when not known.
	Subject string
}

// platforms are the products behind the presets.
var platforms = map[string]Platform{
	"darwin":     {Name: "Darwin", Subject: "session"},
	"chat-inbox": {Name: "the chat inbox", Subject: "conversation"},
	"docssmith":  {Name: "DocsSmith Demo2", Subject: "conversation"},
	"svix":       {Name: "Svix"},
	"github":     {Name: "GitHub", Subject: "repository"},
	"stripe":     {Name: "Stripe", Subject: "object"},
	"slack":      {Name: "Slack", Subject: "team"},
	"shopify":    {Name: "Shopify", Subject: "resource"},
	"meta":       {Name: "WhatsApp", Subject: "account"},
	"twilio":     {Name: "Twilio", Subject: "resource"},
	"zendesk":    {Name: "Zendesk", Subject: "resource"},
	"intercom":   {Name: "Intercom", Subject: "item"},
	"hubspot":    {Name: "HubSpot", Subject: "object"},
	"linear":     {Name: "Linear", Subject: "entity"},
	"telegram":   {Name: "Telegram", Subject: "chat"},
	"discord":    {Name: "Discord", Subject: "guild"},
}

// renamed maps the names providers had before to their names now. A
// source may still use an old name; Build says which name replaces it.
var renamed = map[string]string{
	"chat":     "chat-inbox",
	"envelope": "docssmith",
}

// lookup returns the preset of provider, following a renamed one.
func lookup(provider string) (p preset, name string, ok bool) {
	name = provider
	if n, old := renamed[provider]; old {
		name = n
	}
	p, ok = catalogue[name]
	return p, name, ok
}

// PlatformOf describes provider's product; the zero Platform's Subject
// is "subject".
func PlatformOf(provider string) Platform {
	out := platforms[Canonical(provider)]
	if out.Subject == "" {
		out.Subject = "subject"
	}
	return out
}

// Canonical returns the current name of provider: itself, or the name
// that replaced an old one.
func Canonical(provider string) string {
	if n, ok := renamed[provider]; ok {
		return n
	}
	return provider
}

func hmacScheme(header, alg, enc, prefix, signed, tsHeader, idHeader string) *Verify {
	return &Verify{Type: "hmac", Header: header, Algorithm: alg, Encoding: enc, Prefix: prefix, Signed: signed, TimestampHeader: tsHeader, IDHeader: idHeader}
}

var catalogue = map[string]preset{
	"darwin": {
		verify:    hmacScheme(darwin.SignatureHeader, "sha256", "hex", "", "{body}", "", ""),
		normalize: darwinNormalize,
	},
	"standard-webhooks": {
		verify: hmacScheme("Webhook-Signature", "sha256", "base64", "", "{id}.{timestamp}.{body}", "Webhook-Timestamp", "Webhook-Id"),
		format: verify.List, secret: whsec,
		normalize: (&shape{eventType: []source{at("type")}, id: []source{hdr("Webhook-Id")}, timestamp: []source{at("timestamp")}, data: []source{at("data")}}).normalize,
	},
	"svix": {
		verify: hmacScheme("Svix-Signature", "sha256", "base64", "", "{id}.{timestamp}.{body}", "Svix-Timestamp", "Svix-Id"),
		format: verify.List, secret: whsec,
		normalize: (&shape{eventType: []source{at("type")}, id: []source{hdr("Svix-Id")}, timestamp: []source{at("timestamp")}, data: []source{at("data")}}).normalize,
	},
	"github": {
		verify:    hmacScheme("X-Hub-Signature-256", "sha256", "hex", "sha256=", "{body}", "", ""),
		normalize: (&shape{eventType: []source{hdr("X-GitHub-Event")}, suffix: []source{at("action")}, id: []source{hdr("X-GitHub-Delivery")}, subject: []source{at("repository.full_name")}}).normalize,
	},
	"stripe": {
		verify: hmacScheme("Stripe-Signature", "sha256", "hex", "", "{timestamp}.{body}", "", ""),
		format: verify.Stripe,
		normalize: (&shape{eventType: []source{at("type")}, id: []source{at("id")}, timestamp: []source{at("created")},
			subject: []source{at("data.object.id")}, data: []source{at("data")}}).normalize,
	},
	"slack": {
		verify: hmacScheme("X-Slack-Signature", "sha256", "hex", "v0=", "v0:{timestamp}:{body}", "X-Slack-Request-Timestamp", ""),
		normalize: (&shape{eventType: []source{at("event.type"), at("type")}, id: []source{at("event_id")}, timestamp: []source{at("event_time")},
			subject: []source{at("team_id")}, data: []source{at("event")}}).normalize,
		handshake: slackHandshake,
	},
	"shopify": {
		verify: hmacScheme("X-Shopify-Hmac-Sha256", "sha256", "base64", "", "{body}", "", ""),
		normalize: (&shape{eventType: []source{hdr("X-Shopify-Topic")}, typeFunc: func(s string) string { return strings.ReplaceAll(s, "/", ".") },
			id: []source{hdr("X-Shopify-Event-Id"), hdr("X-Shopify-Webhook-Id")}, timestamp: []source{hdr("X-Shopify-Triggered-At")},
			subject: []source{at("admin_graphql_api_id"), at("id")}}).normalize,
	},
	"meta": {
		verify:    hmacScheme("X-Hub-Signature-256", "sha256", "hex", "sha256=", "{body}", "", ""),
		normalize: (&shape{eventType: []source{at("object")}, suffix: []source{at("entry.0.changes.0.field")}, subject: []source{at("entry.0.id")}}).normalize,
		challenge: true,
	},
	"twilio": {
		verify:    hmacScheme("X-Twilio-Signature", "sha1", "base64", "", "{url}{form}", "", ""),
		bodyHash:  "bodySHA256",
		normalize: twilioNormalize,
	},
	"zendesk": {
		verify: hmacScheme("X-Zendesk-Webhook-Signature", "sha256", "base64", "", "{timestamp}{body}", "X-Zendesk-Webhook-Signature-Timestamp", ""),
		normalize: (&shape{eventType: []source{at("type")}, id: []source{at("id")}, timestamp: []source{at("time")},
			subject: []source{at("detail.id")}}).normalize,
	},
	"intercom": {
		verify: hmacScheme("X-Hub-Signature", "sha1", "hex", "sha1=", "{body}", "", ""),
		normalize: (&shape{eventType: []source{at("topic")}, id: []source{at("id")}, timestamp: []source{at("created_at")},
			subject: []source{at("data.item.id")}, data: []source{at("data")}}).normalize,
	},
	"hubspot": {
		verify: hmacScheme("X-HubSpot-Signature-v3", "sha256", "base64", "", "{method}{url}{body}{timestamp}", "X-HubSpot-Request-Timestamp", ""),
		millis: true,
		normalize: (&shape{eventType: []source{at("0.subscriptionType")}, timestamp: []source{at("0.occurredAt")},
			subject: []source{at("0.objectId")}, wrap: "events"}).normalize,
	},
	"linear": {
		verify: hmacScheme("Linear-Signature", "sha256", "hex", "", "{body}", "", ""),
		normalize: (&shape{eventType: []source{at("type")}, suffix: []source{at("action")}, id: []source{hdr("Linear-Delivery")},
			timestamp: []source{at("createdAt")}, subject: []source{at("data.id")}, data: []source{at("data")}}).normalize,
		// Linear's docs: reject a webhookTimestamp more than a minute off.
		bodyTimestamp: "webhookTimestamp", bodyTolerance: time.Minute,
	},
	"telegram": {
		verify:    &Verify{Type: "token", Header: "X-Telegram-Bot-Api-Secret-Token"},
		normalize: telegramNormalize,
	},
	"discord": {
		verify:    &Verify{Type: "ed25519", Header: "X-Signature-Ed25519", TimestampHeader: "X-Signature-Timestamp", Signed: "{timestamp}{body}"},
		normalize: discordNormalize,
		handshake: discordHandshake,
	},
	"chat-inbox": {
		needs: "the chat inbox signs nothing (its documentation asks for an unauthenticated route): write verify: {type: none} to accept that explicitly, or protect the path with verify: {type: token, query: ...} and ip_allow:",
		normalize: (&shape{eventType: []source{at("event")}, subject: []source{at("conversation.id"), at("message.conversation_id")},
			timestamp: []source{at("conversation.lastMessageAt"), at("conversation.updatedAt")}, dataExcept: []string{"event"}}).normalize,
	},
	"docssmith": {
		verify:    hmacScheme("", "sha256", "hex", "", "{body}", "", ""),
		needs:     "name the signature header DocsSmith Demo2 sends: its documentation prints x-DocsSmith Demo2-signature, which no HTTP request can carry (a header name has no spaces); look at a delivered request's headers and write verify: {header: X-DocsSmith-Demo2-Signature} or the name you see",
		normalize: docssmithNormalize,
	},
	"custom": {
		needs: "custom has no preset: describe the scheme, such as verify: {type: hmac, header: X-Signature, algorithm: sha256, encoding: hex}",
	},
}

// Names lists the providers, sorted.
func Names() []string { return slices.Sorted(maps.Keys(catalogue)) }

// Types lists the verify types.
var Types = []string{"hmac", "token", "basic", "ed25519", "none"}

// Build builds a source's verification and normalization. Every error is
// an *Error, or several joined.
func Build(s Settings) (*Source, error) {
	p, name, ok := lookup(s.Provider)
	if !ok {
		return nil, &Error{Field: "provider", Msg: fmt.Sprintf("unknown provider %q: one of %s", s.Provider, strings.Join(Names(), ", "))}
	}
	out := &Source{}
	if name != s.Provider {
		out.Renamed = name
	}
	s.Provider = name
	var errs []error

	v, fromPreset, err := p.scheme(s.Verify)
	if err != nil {
		errs = append(errs, err)
	} else {
		var keys [][]byte
		out.Verifier, keys, err = p.verifier(v, fromPreset, s)
		if err != nil {
			errs = append(errs, err)
		} else {
			hm, _ := out.Verifier.(*verify.HMAC)
			ed, _ := out.Verifier.(*verify.Ed25519)
			out.sign = p.signer(v, fromPreset, keys, hm, ed)
		}
		if err == nil && p.bodyTimestamp != "" {
			tol := v.Tolerance
			if tol <= 0 {
				tol = p.bodyTolerance
			}
			out.Verifier = verify.All(out.Verifier, bodyTime{member: p.bodyTimestamp, tolerance: tol})
		}
		out.Unauthenticated = v.Type == "none"
	}
	var allow verify.Verifier
	if len(s.IPAllow) > 0 {
		a, err := verify.NewIPAllow(s.IPAllow, s.TrustedProxies)
		if err != nil {
			errs = append(errs, fieldOf(err, ""))
		} else {
			allow = a
			if out.Verifier != nil {
				out.Verifier = verify.All(allow, out.Verifier)
			}
		}
	} else if len(s.TrustedProxies) > 0 {
		errs = append(errs, &Error{Field: "trusted_proxies", Msg: "only used with ip_allow: (to find the client address behind a proxy)"})
	}
	out.Handshake = p.handshake
	if err := p.buildChallenge(out, allow, s); err != nil {
		errs = append(errs, err)
	}

	switch {
	case s.Map != nil:
		m, err := mapping.Compile(s.Map)
		if err != nil {
			var merr *mapping.Error
			if errors.As(err, &merr) {
				errs = append(errs, &Error{Field: "map." + merr.Field, Msg: merr.Msg, Line: merr.Line, Column: merr.Column})
			} else {
				errs = append(errs, &Error{Field: "map", Msg: err.Error()})
			}
		} else {
			out.Normalize = m.Normalize
		}
	case p.normalize != nil:
		out.Normalize = p.normalize
	default:
		errs = append(errs, &Error{Field: "map", Msg: "missing: provider custom maps payloads with map: {eventType: 'body.type', ...}"})
	}
	if s.Subject != "" {
		e, err := lang.CompileExpression(s.Subject)
		var serr *lang.SyntaxError
		switch {
		case errors.As(err, &serr):
			errs = append(errs, &Error{Field: "subject", Msg: serr.Msg, Line: serr.Line, Column: serr.Column})
		case err != nil:
			errs = append(errs, &Error{Field: "subject", Msg: err.Error()})
		case out.Normalize != nil:
			out.Normalize = withSubject(out.Normalize, e)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// buildChallenge sets out.Challenge for presets the platform checks with
// a GET, and refuses a verify_token anywhere else.
func (p preset) buildChallenge(out *Source, allow verify.Verifier, s Settings) error {
	var token string
	if s.Verify != nil {
		token = s.Verify.VerifyToken
	}
	if !p.challenge {
		if token != "" {
			return &Error{Field: "verify.verify_token", Msg: fmt.Sprintf("provider %s sends no GET subscription challenge (only meta does): remove it", s.Provider)}
		}
		return nil
	}
	var tok verify.Verifier // nil: every challenge is refused, and logged
	if token != "" {
		t, err := verify.NewToken(verify.TokenConfig{Query: "hub.verify_token", Secrets: [][]byte{[]byte(token)}})
		if err != nil {
			return &Error{Field: "verify.verify_token", Msg: err.Error()}
		}
		tok = t
	}
	out.Challenge = metaChallenge(allow, tok)
	return nil
}

// scheme merges the preset's scheme with the configured block.
func (p preset) scheme(block *Verify) (v Verify, fromPreset bool, err error) {
	switch {
	case block == nil && p.verify == nil:
		return v, false, &Error{Field: "verify", Msg: "missing: " + p.needs}
	case block == nil:
		return *p.verify, true, nil
	case p.verify != nil && (block.Type == "" || block.Type == p.verify.Type):
		v = *p.verify
		override(&v, block)
		return v, true, nil
	case block.Type == "":
		return v, false, &Error{Field: "verify.type", Msg: "missing: one of " + strings.Join(Types, ", ")}
	}
	return *block, false, nil
}

// override sets the non-zero fields of b on v.
func override(v, b *Verify) {
	set := func(dst *string, src string) {
		if src != "" {
			*dst = src
		}
	}
	set(&v.Header, b.Header)
	set(&v.Algorithm, b.Algorithm)
	set(&v.Encoding, b.Encoding)
	set(&v.Prefix, b.Prefix)
	set(&v.Signed, b.Signed)
	set(&v.TimestampHeader, b.TimestampHeader)
	set(&v.IDHeader, b.IDHeader)
	set(&v.Query, b.Query)
	set(&v.Username, b.Username)
	set(&v.PublicURL, b.PublicURL)
	if b.Tolerance != 0 {
		v.Tolerance = b.Tolerance
	}
	if len(b.PublicKeys) > 0 {
		v.PublicKeys = b.PublicKeys
	}
}

// verifier builds the verifier of scheme v, and returns it with the keys
// it verifies with (decoded as the preset decodes them).
func (p preset) verifier(v Verify, fromPreset bool, s Settings) (verify.Verifier, [][]byte, error) {
	if s.CanonicalJSON && v.Type != "hmac" {
		return nil, nil, &Error{Field: "canonical_json", Msg: "applies to hmac signatures only"}
	}
	if v.Type != "hmac" && v.Type != "token" && v.Type != "basic" && len(s.Secrets) > 0 {
		return nil, nil, &Error{Field: "secret", Msg: fmt.Sprintf("verify type %s uses no secret: remove it, so nobody believes it is checked", v.Type)}
	}
	var secrets [][]byte
	for _, sec := range s.Secrets {
		if sec == "" {
			return nil, nil, &Error{Field: "secret", Msg: "is empty (an unset ${VAR}?): an empty secret would verify nothing"}
		}
		key := []byte(sec)
		if fromPreset && p.secret != nil {
			var err error
			if key, err = p.secret(sec); err != nil {
				return nil, nil, &Error{Field: "secret", Msg: err.Error()}
			}
		}
		secrets = append(secrets, key)
	}
	if fromPreset && len(secrets) == 0 && (v.Type == "hmac" || v.Type == "token") && v.Header != "" {
		return nil, nil, &Error{Field: "secret", Msg: fmt.Sprintf("%s signs every webhook (%s): set secret: (or secret_file:) to the signing secret it gave you", s.Provider, v.Header)}
	}
	if err := p.apparent(v, fromPreset, s); err != nil {
		return nil, nil, err
	}
	var (
		ver verify.Verifier
		err error
	)
	switch v.Type {
	case "hmac":
		c := verify.HMACConfig{
			Header: v.Header, Algorithm: v.Algorithm, Encoding: v.Encoding, Prefix: v.Prefix,
			Signed: v.Signed, TimestampHeader: v.TimestampHeader, IDHeader: v.IDHeader,
			Tolerance: v.Tolerance, PublicURL: v.PublicURL, CanonicalJSON: s.CanonicalJSON, Secrets: secrets,
		}
		if fromPreset {
			c.Format, c.BodyHashParam, c.TimestampMillis = p.format, p.bodyHash, p.millis
		}
		if c.Header == "" && p.needs != "" && fromPreset {
			return nil, nil, &Error{Field: "verify.header", Msg: "missing: " + p.needs}
		}
		ver, err = verify.NewHMAC(c)
	case "token":
		ver, err = verify.NewToken(verify.TokenConfig{Header: v.Header, Prefix: v.Prefix, Query: v.Query, Secrets: secrets})
	case "basic":
		ver, err = verify.NewBasic(v.Username, secrets)
	case "ed25519":
		ver, err = verify.NewEd25519(verify.Ed25519Config{Header: v.Header, Encoding: v.Encoding, Signed: v.Signed,
			TimestampHeader: v.TimestampHeader, Tolerance: v.Tolerance, PublicKeys: v.PublicKeys})
	case "none":
		ver = verify.None{}
	default:
		return nil, nil, &Error{Field: "verify.type", Msg: fmt.Sprintf("unknown type %q: one of %s", v.Type, strings.Join(Types, ", "))}
	}
	if err != nil {
		if errors.Is(err, verify.ErrUnsigned) && fromPreset {
			if e := p.overridden(err, v, s); e != nil {
				return nil, nil, e
			}
		}
		return nil, nil, fieldOf(err, "verify.")
	}
	return ver, secrets, nil
}

// apparent refuses settings that look like replay protection and are
// not: a timestamp, an id or a signed template on a scheme that signs
// nothing, and a tolerance where no signed timestamp is checked. (A
// timestamp or id header left out of the signed content is refused by
// the verifier itself: verify.ErrUnsigned.)
func (p preset) apparent(v Verify, fromPreset bool, s Settings) error {
	switch v.Type {
	case "token", "basic", "none":
		for _, f := range []struct{ key, val string }{{"timestamp_header", v.TimestampHeader}, {"id_header", v.IDHeader}, {"signed", v.Signed}} {
			if f.val != "" {
				return &Error{Field: "verify." + f.key, Msg: fmt.Sprintf("verify type %s signs nothing, so %s protects nothing: remove it, or describe the sender's signature (type: hmac or ed25519)", v.Type, f.key)}
			}
		}
	}
	timestamped := p.bodyTimestamp != ""
	switch v.Type {
	case "hmac":
		timestamped = timestamped || v.TimestampHeader != "" || (fromPreset && p.format == verify.Stripe)
	case "ed25519":
		timestamped = timestamped || v.TimestampHeader != ""
	}
	if s.Verify != nil && s.Verify.Tolerance != 0 && !timestamped {
		return &Error{Field: "verify.tolerance", Msg: "no signed timestamp is checked in this scheme, so a tolerance refuses nothing: remove it, or name the sender's timestamp (timestamp_header:, with {timestamp} in signed:)"}
	}
	return nil
}

// overridden places a verify.ErrUnsigned problem at the source's
// signed: when that override dropped the timestamp or id of the preset,
// which the source did not write itself; nil when the source wrote the
// header (the problem is then where the verifier puts it).
func (p preset) overridden(err error, v Verify, s Settings) error {
	var ce *verify.ConfigError
	if !errors.As(err, &ce) || s.Verify == nil || s.Verify.Signed == "" || p.verify == nil {
		return nil
	}
	switch {
	case ce.Field == "timestamp_header" && s.Verify.TimestampHeader == "":
		return &Error{Field: "verify.signed", Msg: fmt.Sprintf("%q leaves out {timestamp}, but the %s preset reads %s and checks it against the tolerance: a request signed once would verify again later under a fresh timestamp. %s signs %q: remove signed: to use that, or put {timestamp} where the sender signs it",
			v.Signed, s.Provider, v.TimestampHeader, s.Provider, p.verify.Signed)}
	case ce.Field == "id_header" && s.Verify.IDHeader == "":
		return &Error{Field: "verify.signed", Msg: fmt.Sprintf("%q leaves out {id}, but the %s preset reads %s as the event's id: a request signed once could be sent again under a fresh id and be taken for a new event. %s signs %q: remove signed: to use that, or put {id} where the sender signs it",
			v.Signed, s.Provider, v.IDHeader, s.Provider, p.verify.Signed)}
	}
	return nil
}

// fieldOf turns a verify.ConfigError into an Error at its field.
func fieldOf(err error, prefix string) error {
	var ce *verify.ConfigError
	if !errors.As(err, &ce) {
		return &Error{Field: strings.TrimSuffix(prefix, "."), Msg: err.Error()}
	}
	field := ce.Field
	switch {
	case field == "secret":
	case field == "public_key":
		field = "verify.public_keys"
	case strings.HasPrefix(field, "ip_allow"), strings.HasPrefix(field, "trusted_proxies"):
	default:
		field = prefix + field
	}
	return &Error{Field: field, Msg: ce.Msg}
}

// whsec decodes a Standard Webhooks secret: base64 after "whsec_".
func whsec(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, errors.New("a Standard Webhooks secret is whsec_ followed by base64, as the sender shows it")
	}
	return key, nil
}

// Sign returns how the source's sender would post body: the headers that
// sign it (none for an unsigned source) and the URL o.Signed.URL becomes
// (a token or a body hash may travel in the query). Every verify type
// can be signed for, ed25519 only with o.Ed25519Key; an error wrapping
// ErrCannotSign says why not.
func (s *Source) Sign(body []byte, o SignOptions) (*Outgoing, error) {
	if s.sign == nil {
		return nil, fmt.Errorf("%w: the source has no verification scheme", ErrCannotSign)
	}
	return s.sign(body, o)
}

// Sign returns the headers with which provider would sign body with
// secret, for tests: every HMAC preset with a
// fixed header. s gives the id, timestamp and URL the scheme may sign.
func Sign(provider, secret string, body []byte, s verify.Signed) (http.Header, error) {
	p, _, ok := lookup(provider)
	if !ok {
		return nil, fmt.Errorf("unknown provider %q: one of %s", provider, strings.Join(Names(), ", "))
	}
	if p.verify == nil || p.verify.Type != "hmac" || p.verify.Header == "" {
		return nil, fmt.Errorf("cannot sign for provider %q: it has no HMAC scheme with a fixed header", provider)
	}
	key := []byte(secret)
	if p.secret != nil {
		var err error
		if key, err = p.secret(secret); err != nil {
			return nil, err
		}
	}
	v := p.verify
	h, err := verify.NewHMAC(verify.HMACConfig{Header: v.Header, Algorithm: v.Algorithm, Encoding: v.Encoding, Prefix: v.Prefix,
		Signed: v.Signed, TimestampHeader: v.TimestampHeader, IDHeader: v.IDHeader, Format: p.format, BodyHashParam: p.bodyHash,
		TimestampMillis: p.millis, Secrets: [][]byte{key}})
	if err != nil {
		return nil, err
	}
	return h.Sign(key, body, s)
}

func darwinNormalize(r *inbound.Request) (*event.Event, error) {
	ev, err := darwin.Normalize(r.Body, r.ReceivedAt)
	var ferr *darwin.FieldError
	if errors.As(err, &ferr) {
		return nil, &inbound.FieldError{Field: ferr.Field, Msg: ferr.Msg}
	}
	return ev, err
}

// withSubject sets the subject of norm's events to subject's value. When
// it fails, or gives nil or "", the event keeps the provider's subject.
func withSubject(norm func(*inbound.Request) (*event.Event, error), subject *lang.Expression) func(*inbound.Request) (*event.Event, error) {
	return func(r *inbound.Request) (*event.Event, error) {
		ev, err := norm(r)
		if err != nil {
			return nil, err
		}
		env, err := ev.Env()
		if err != nil {
			return ev, nil
		}
		if v, err := subject.Eval(env); err == nil {
			if s := strings.TrimSpace(lang.Text(v)); s != "" {
				ev.Subject = s
			}
		}
		return ev, nil
	}
}
