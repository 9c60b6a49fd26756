package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/receiver/inbound"
)

// Format is how a signature header lays out its signatures.
type Format int

const (
	// Plain is Prefix followed by one encoded digest: "sha256=ab12…".
	Plain Format = iota
	// List is Standard Webhooks': space-separated "v1,<base64>" entries;
	// any v1 entry that matches passes, other versions are ignored.
	List
	// Stripe is "t=<unix>,v1=<hex>,v1=<hex>,v0=…": the timestamp is in
	// the header, any v1 that matches passes, other schemes are ignored.
	Stripe
)

// HMACConfig describes an HMAC signature scheme.
type HMACConfig struct {
	// Header carries the signature.
	Header string
	// Algorithm is sha1, sha256 (the default) or sha512.
	Algorithm string
	// Encoding of the digest: hex (the default; either case accepted) or
	// base64 (standard alphabet, padded).
	Encoding string
	// Prefix precedes the digest in a Plain header ("sha256=", "v0=").
	Prefix string
	Format Format
	// Signed is the signed-content template; "{body}" by default.
	Signed string
	// TimestampHeader and IDHeader supply {timestamp} and {id}.
	TimestampHeader string
	IDHeader        string
	// TimestampMillis reads the timestamp as Unix milliseconds only
	// (HubSpot's), and signs with milliseconds: a value in seconds is
	// then a time in January 1970, refused as stale. Otherwise the
	// timestamp is Unix seconds, Unix milliseconds (10^11 or more) or
	// RFC 3339.
	TimestampMillis bool
	// Tolerance bounds |receive time - timestamp| when the scheme has a
	// timestamp; DefaultTolerance when 0.
	Tolerance time.Duration
	// PublicURL replaces the scheme and host of {url}.
	PublicURL string
	// BodyHashParam is Twilio's bodySHA256: a query parameter holding
	// the body's SHA-256, which a {url} signature then covers.
	BodyHashParam string
	// CanonicalJSON also accepts the signature of the body's compact
	// re-serialization (see Canonical). Weaker: off by default.
	CanonicalJSON bool
	// Secrets are the keys; any one that verifies passes.
	Secrets [][]byte
}

// HMAC verifies HMAC signatures.
type HMAC struct {
	c       HMACConfig
	tmpl    *template
	size    int
	public  *url.URL
	macs    []*sync.Pool // one per secret, of *macState keyed with it
	newHash func() hash.Hash
}

type macState struct {
	h   hash.Hash
	sum [sha512.Size]byte
}

// maxSignatures bounds how many signatures one header may list.
const maxSignatures = 8

// NewHMAC validates c and builds its verifier.
func NewHMAC(c HMACConfig) (*HMAC, error) {
	v := &HMAC{c: c}
	switch strings.ToLower(c.Algorithm) {
	case "", "sha256":
		v.newHash, v.size = sha256.New, sha256.Size
	case "sha1":
		v.newHash, v.size = sha1.New, sha1.Size
	case "sha512":
		v.newHash, v.size = sha512.New, sha512.Size
	default:
		return nil, configErr("algorithm", "unknown algorithm %q: one of sha1, sha256, sha512", c.Algorithm)
	}
	switch c.Encoding {
	case "", "hex", "base64":
	default:
		return nil, configErr("encoding", "unknown encoding %q: hex or base64", c.Encoding)
	}
	if strings.TrimSpace(c.Header) == "" {
		return nil, configErr("header", "missing: name the header that carries the signature")
	}
	if err := checkHeaders("header", c.Header, "timestamp_header", c.TimestampHeader, "id_header", c.IDHeader); err != nil {
		return nil, err
	}
	if c.Signed == "" {
		c.Signed = "{body}"
	}
	t, err := parseTemplate(c.Signed)
	if err != nil {
		return nil, err
	}
	v.tmpl = t
	if t.uses["timestamp"] && c.TimestampHeader == "" && c.Format != Stripe {
		return nil, configErr("timestamp_header", "the signed content uses {timestamp}: name the header that carries it")
	}
	if t.uses["id"] && c.IDHeader == "" {
		return nil, configErr("id_header", "the signed content uses {id}: name the header that carries it")
	}
	if err := t.checkSigned(c.Signed, c.TimestampHeader, c.IDHeader, c.Format == Stripe); err != nil {
		return nil, err
	}
	if c.Tolerance < 0 {
		return nil, configErr("tolerance", "must not be negative")
	}
	if c.Tolerance == 0 {
		v.c.Tolerance = DefaultTolerance
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, configErr("public_url", "must be an absolute http:// or https:// URL, such as https://hooks.example.com")
		}
		v.public = u
	}
	if len(c.Secrets) == 0 {
		return nil, configErr("secret", "missing: set secret: (or secret_file:) to the sender's signing secret")
	}
	for _, s := range c.Secrets {
		if len(s) == 0 {
			return nil, configErr("secret", "is empty")
		}
		key := s
		v.macs = append(v.macs, &sync.Pool{New: func() any { return &macState{h: hmac.New(v.newHash, key)} }})
	}
	v.c.Signed = c.Signed
	return v, nil
}

// Verify implements Verifier.
func (v *HMAC) Verify(r *inbound.Request) error {
	header, err := single(r, v.c.Header)
	if err != nil {
		return err
	}
	var sigs [maxSignatures][sha512.Size]byte
	n, ts, err := v.parse(header, &sigs)
	if err != nil {
		return err
	}
	vals := values{body: r.Body, method: r.Method}
	if v.c.TimestampHeader != "" && v.c.Format != Stripe {
		if ts, err = single(r, v.c.TimestampHeader); err != nil {
			return err
		}
	}
	if ts != "" || v.tmpl.uses["timestamp"] {
		parse := parseTimestamp
		if v.c.TimestampMillis {
			parse = parseMillis
		}
		t, err := parse(ts)
		if err != nil {
			return err
		}
		if err := checkTime(t, r.ReceivedAt, v.c.Tolerance); err != nil {
			return err
		}
		vals.timestamp = ts
	}
	if v.c.IDHeader != "" {
		if vals.id, err = single(r, v.c.IDHeader); err != nil {
			return err
		}
	}
	if v.tmpl.uses["url"] {
		vals.url = requestURL(r, v.public)
	}
	if v.tmpl.uses["form"] {
		if vals.form, err = sortedForm(r); err != nil {
			return err
		}
	}
	if v.c.BodyHashParam != "" && vals.form == nil && len(r.Body) > 0 {
		// The URL signature covers the body only through its hash.
		hashes := r.Query()[v.c.BodyHashParam]
		if len(hashes) != 1 || !bodyHashMatches(r.Body, hashes[0]) {
			return fmt.Errorf("%w: %s does not match the body", ErrMismatch, v.c.BodyHashParam)
		}
	}
	if v.matches(&vals, &sigs, n) {
		return nil
	}
	if v.tmpl.uses["url"] {
		// As Twilio's own libraries do: the sender may have signed the
		// URL with its default port (https://host:443/…) or without it.
		if alt, ok := toggleDefaultPort(vals.url); ok {
			signed := vals.url
			vals.url = alt
			if v.matches(&vals, &sigs, n) {
				return nil
			}
			vals.url = signed
		}
	}
	if v.c.CanonicalJSON && v.tmpl.uses["body"] {
		if c, ok := Canonical(r.Body); ok && string(c) != string(r.Body) {
			vals.body = c
			if v.matches(&vals, &sigs, n) {
				return nil
			}
		}
	}
	return ErrMismatch
}

// matches reports whether any secret's MAC equals any signature. Every
// pair is compared, so the time taken does not tell which one matched.
func (v *HMAC) matches(vals *values, sigs *[maxSignatures][sha512.Size]byte, n int) bool {
	ok := false
	for _, pool := range v.macs {
		st := pool.Get().(*macState)
		st.h.Reset()
		v.tmpl.write(st.h, vals)
		sum := st.h.Sum(st.sum[:0])
		for i := range n {
			if hmac.Equal(sum, sigs[i][:v.size]) {
				ok = true
			}
		}
		pool.Put(st)
	}
	return ok
}

// parse decodes the signatures of a header into sigs and returns how
// many there are, and the timestamp a Stripe header carries.
func (v *HMAC) parse(header string, sigs *[maxSignatures][sha512.Size]byte) (n int, ts string, err error) {
	add := func(enc string) error {
		if n == maxSignatures {
			return fmt.Errorf("%w: more than %d signatures", ErrMalformed, maxSignatures)
		}
		if !v.decode(enc, sigs[n][:v.size]) {
			return nil // not one of ours: another may match
		}
		n++
		return nil
	}
	switch v.c.Format {
	case Plain:
		enc, ok := strings.CutPrefix(header, v.c.Prefix)
		if !ok {
			return 0, "", fmt.Errorf("%w: want the prefix %q", ErrMalformed, v.c.Prefix)
		}
		if !v.decode(enc, sigs[0][:v.size]) {
			return 0, "", fmt.Errorf("%w: not a %s digest of the expected length", ErrMalformed, v.encoding())
		}
		return 1, "", nil
	case List:
		for _, entry := range strings.Fields(header) {
			version, enc, ok := strings.Cut(entry, ",")
			if !ok || version != "v1" {
				continue
			}
			if err := add(enc); err != nil {
				return 0, "", err
			}
		}
	case Stripe:
		for _, entry := range strings.Split(header, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(entry), "=")
			if !ok {
				continue
			}
			switch k {
			case "t":
				if ts != "" {
					return 0, "", fmt.Errorf("%w: two timestamps", ErrMalformed)
				}
				ts = val
			case "v1":
				if err := add(val); err != nil {
					return 0, "", err
				}
			}
		}
		if ts == "" {
			return 0, "", fmt.Errorf("%w: no t= timestamp", ErrMissing)
		}
	}
	if n == 0 {
		return 0, "", fmt.Errorf("%w: no v1 signature", ErrMissing)
	}
	return n, ts, nil
}

func (v *HMAC) encoding() string {
	if v.c.Encoding == "" {
		return "hex"
	}
	return v.c.Encoding
}

// decode decodes enc into dst, which must be exactly filled.
func (v *HMAC) decode(enc string, dst []byte) bool {
	if v.c.Encoding == "base64" {
		if base64.StdEncoding.DecodedLen(len(enc)) < len(dst) || base64.StdEncoding.EncodedLen(len(dst)) != len(enc) {
			return false
		}
		var buf [sha512.Size + 2]byte
		m, err := base64.StdEncoding.Decode(buf[:], []byte(enc))
		if err != nil || m != len(dst) {
			return false
		}
		copy(dst, buf[:m])
		return true
	}
	if len(enc) != 2*len(dst) {
		return false
	}
	_, err := hex.Decode(dst, []byte(enc))
	return err == nil
}

func (v *HMAC) encode(sum []byte) string {
	if v.c.Encoding == "base64" {
		return base64.StdEncoding.EncodeToString(sum)
	}
	return hex.EncodeToString(sum)
}

// parseMillis reads Unix milliseconds, digits only.
func parseMillis(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("%w: timestamp %q is not Unix milliseconds", ErrMalformed, s)
	}
	return time.UnixMilli(n), nil
}

// parseTimestamp reads Unix seconds, Unix milliseconds (10^11 or more:
// 12 digits and up, which as seconds would be past the year 5000) or
// RFC 3339 (as Zendesk sends).
func parseTimestamp(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		if n >= 1e11 {
			return time.UnixMilli(n), nil
		}
		return time.Unix(n, 0), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: timestamp %q is neither Unix time nor RFC 3339", ErrMalformed, s)
}

// Signed are the values a sender chooses when signing.
type Signed struct {
	ID        string
	Timestamp time.Time
	// URL is the full URL posted to, for schemes that sign it.
	URL    string
	Method string
	// ContentType, for {form}.
	ContentType string
}

// Sign returns the headers with which a sender holding secret would sign
// body: the signature, and the timestamp and id headers the scheme uses.
func (v *HMAC) Sign(secret, body []byte, s Signed) (http.Header, error) {
	h := http.Header{}
	ts := strconv.FormatInt(s.Timestamp.Unix(), 10)
	if v.c.TimestampMillis {
		ts = strconv.FormatInt(s.Timestamp.UnixMilli(), 10)
	}
	vals := values{body: body, timestamp: ts, id: s.ID, method: s.Method}
	if v.tmpl.uses["url"] || v.c.BodyHashParam != "" {
		if s.URL == "" {
			return nil, fmt.Errorf("this scheme signs the URL: give the URL posted to")
		}
		u, err := url.Parse(s.URL)
		if err != nil {
			return nil, err
		}
		r := &inbound.Request{Body: body, URL: u, Header: http.Header{"Content-Type": {s.ContentType}}}
		if vals.form, err = sortedForm(r); err != nil {
			return nil, err
		}
		vals.url = u.String()
	}
	if v.c.TimestampHeader != "" {
		h.Set(v.c.TimestampHeader, ts)
	}
	if v.c.IDHeader != "" {
		h.Set(v.c.IDHeader, s.ID)
	}
	mac := hmac.New(v.newHash, secret)
	v.tmpl.write(mac, &vals)
	sig := v.encode(mac.Sum(nil))
	switch v.c.Format {
	case List:
		h.Set(v.c.Header, "v1,"+sig)
	case Stripe:
		h.Set(v.c.Header, "t="+ts+",v1="+sig)
	default:
		h.Set(v.c.Header, v.c.Prefix+sig)
	}
	return h, nil
}
