package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const httpShaped = `sources:
  - name: darwin
    provider: darwin
    secret: darwin-webhook-secret
sinks:
  - name: crm
    type: http
    method: PUT
    url: https://crm.example.com/contacts/{{ data.sessionId }}?agent={{ agentName }}
    headers:
      Authorization: Bearer ${CRM_TOKEN}
      X-Tenant: '{{ source }}'
    body: '{"contact": {"phone": data.sessionId, "note": data.summary}, "source": "darwin"}'
    format: cloudevents
    sign:
      scheme: standard-webhooks
      secret: ${CRM_SIGNING_SECRET}
    tls:
      ca_file: /etc/ssl/private-ca.pem
    follow_redirects: true
  - name: tap
    type: stdout
  - name: log
    type: file
    path: ./data/deliveries.jsonl
routes:
  - name: r
    match: ["*"]
    to: [crm, tap, log]
`

var httpEnv = env(map[string]string{"CRM_TOKEN": "tok-secret", "CRM_SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})

func TestHTTPShaped(t *testing.T) {
	t.Parallel()
	c, err := Parse("c.yaml", []byte(httpShaped), httpEnv)
	if err != nil {
		t.Fatal(err)
	}
	h := c.Sinks[0].HTTP
	if h.Method != "PUT" || h.Format != "cloudevents" || !h.FollowRedirects || h.Headers["Authorization"].Reveal() != "Bearer tok-secret" ||
		h.Headers["X-Tenant"] != "{{ source }}" || !strings.HasPrefix(h.Body, `{"contact"`) {
		t.Errorf("http = %+v", h)
	}
	if h.Sign == nil || h.Sign.Scheme != "standard-webhooks" || h.Sign.Secret.Reveal() != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" {
		t.Errorf("sign = %+v", h.Sign)
	}
	if h.TLS == nil || h.TLS.CAFile != "/etc/ssl/private-ca.pem" {
		t.Errorf("tls = %+v", h.TLS)
	}
	if s := c.Sinks[1]; s.Stdout == nil || s.Held() {
		t.Errorf("stdout sink = %+v", s)
	}
	if s := c.Sinks[2]; s.File == nil || s.File.Path != "./data/deliveries.jsonl" || s.File.Fsync == nil || !*s.File.Fsync {
		t.Errorf("file sink = %+v", s.File)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings = %v", c.Warnings)
	}
	// app compiles the templates and places their problems in the
	// values: the nodes must be known.
	for path, want := range map[string][2]int{
		"sinks[0].url":              {9, 13},
		"sinks[0].headers.X-Tenant": {12, 21},
		"sinks[0].body":             {13, 15},
	} {
		if p := c.ProblemIn(path, 1, 4, "x"); p.Line != want[0] || p.Column != want[1] {
			t.Errorf("%s: position %d:%d, want %d:%d", path, p.Line, p.Column, want[0], want[1])
		}
	}
}

func TestHTTPSecretFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "signing")
	os.WriteFile(secret, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600)
	old := filepath.Join(dir, "old")
	os.WriteFile(old, []byte("whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ=\n"), 0o600)
	y := strings.Replace(httpShaped, "      secret: ${CRM_SIGNING_SECRET}\n",
		"      secret_file: "+secret+"\n      secrets_file: ["+old+"]\n", 1)
	c, err := Parse("c.yaml", []byte(y), httpEnv)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Sinks[0].HTTP.Sign.AllSecrets()
	if len(got) != 2 || got[0].Reveal() != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" || !strings.HasPrefix(got[1].Reveal(), "whsec_b2xk") {
		t.Errorf("secrets = %v", got)
	}
}

func TestHTTPProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		old, new string
		want     string
		warning  bool
	}{
		{"template in the host", "https://crm.example.com/contacts/{{", "https://{{ data.host }}/contacts/{{", `c.yaml:9:18: sinks[0].url: a template may not choose the scheme or host`, false},
		{"template right after the host", "crm.example.com/contacts/{{ data.sessionId }}", "crm.example.com{{ data.sessionId }}", `c.yaml:9:33: sinks[0].url: a template may not choose the scheme or host`, false},
		{"template as the URL", "https://crm.example.com/contacts/{{ data.sessionId }}?agent={{ agentName }}", "'{{ data.url }}'", `c.yaml:9:11: sinks[0].url: a template may not choose the scheme or host`, false},
		{"not http", "https://crm.example.com/contacts", "ftp://crm.example.com/contacts", `c.yaml:9:10: sinks[0].url: must be an absolute http:// or https:// URL`, false},
		{"unknown format", "format: cloudevents", "format: cloudevent", `c.yaml:14:13: sinks[0].format: unknown format "cloudevent"; did you mean "cloudevents"?`, false},
		{"content_type without body", "    format: cloudevents\n", "    content_type: text/plain\n", "", false},
		{"own header", "      X-Tenant:", "      idempotency-key:", `c.yaml:12:24: sinks[0].headers.idempotency-key: Idempotency-Key is set by switchyard (the delivery id): remove it here`, false},
		{"signature header", "      X-Tenant:", "      webhook-signature:", `sinks[0].headers.webhook-signature: Webhook-Signature is set by switchyard (the Standard Webhooks signature)`, false},
		{"content type with cloudevents", "      X-Tenant:", "      Content-Type:", `sinks[0].headers.Content-Type: Content-Type is set by switchyard (the CloudEvents format)`, false},
		{"ce header in binary mode", "      X-Tenant:", "      ce-source:", "", false},
		{"missing scheme", "      scheme: standard-webhooks\n", "", `c.yaml:16:7: sinks[0].sign.scheme: missing scheme: one of standard-webhooks, hmac`, false},
		{"unknown scheme", "scheme: standard-webhooks", "scheme: standard-webhook", `sinks[0].sign.scheme: unknown scheme "standard-webhook"; did you mean "standard-webhooks"?`, false},
		{"empty secret", "${CRM_SIGNING_SECRET}", "${NOPE:-}", `c.yaml:17:15: sinks[0].sign.secret: is empty (an unset ${VAR:-}?)`, false},
		{"missing secret", "      secret: ${CRM_SIGNING_SECRET}\n", "", `sinks[0].sign.secret: missing secret (or secret_file)`, false},
		{"hmac keys with standard-webhooks", "      secret: ${CRM_SIGNING_SECRET}\n", "      secret: ${CRM_SIGNING_SECRET}\n      header: X-Sig\n", `c.yaml:18:15: sinks[0].sign.header: only for scheme hmac`, false},
		{"hmac without header", "scheme: standard-webhooks", "scheme: hmac", `sinks[0].sign.header: missing header`, false},
		{"hmac with secrets", "scheme: standard-webhooks\n      secret: ${CRM_SIGNING_SECRET}\n", "scheme: hmac\n      header: X-Signature\n      secret: x\n      secrets: [y]\n", `sinks[0].sign.secrets: an hmac header carries one signature`, false},
		{"unknown sign key", "      scheme: standard-webhooks\n", "      scheme: standard-webhooks\n      algo: sha1\n", `c.yaml:17:7: sinks[0].sign.algo: unknown key "algo" in sinks[0].sign`, false},
		{"tls on http", "url: https://crm", "url: http://crm", `sinks[0].tls: tls applies to https:// URLs`, false},
		{"insecure", "      ca_file: /etc/ssl/private-ca.pem\n", "      insecure_skip_verify: true\n", `c.yaml:19:29: warning: sinks[0].tls.insecure_skip_verify: INSECURE: sink "crm" does not verify the server's TLS certificate`, true},
		{"file without path", "    path: ./data/deliveries.jsonl\n", "", `sinks[2].path: missing path`, false},
		{"stdout with a path", "    type: stdout\n", "    type: stdout\n    path: x\n", `c.yaml:23:5: sinks[1].path: unknown key "path" in a sink of type stdout`, false},
		{"unknown type suggests stdout", "type: stdout", "type: stdot", `sinks[1].type: unknown sink type "stdot"; did you mean "stdout"?`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			y := strings.Replace(httpShaped, tc.old, tc.new, 1)
			if y == httpShaped {
				t.Fatalf("the replacement of %q changed nothing", tc.old)
			}
			if tc.name == "ce header in binary mode" {
				y = strings.Replace(y, "format: cloudevents", "format: cloudevents-binary", 1)
				tc.want = `sinks[0].headers.ce-source: ce-* headers carry the CloudEvent's attributes in format cloudevents-binary`
			}
			if tc.name == "content_type without body" {
				y = strings.Replace(y, "    body: '{\"contact\": {\"phone\": data.sessionId, \"note\": data.summary}, \"source\": \"darwin\"}'\n", "", 1)
				tc.want = `sinks[0].content_type: content_type without body`
			}
			c, err := Parse("c.yaml", []byte(y), httpEnv)
			if tc.warning {
				if err != nil {
					t.Fatal(err)
				}
				var all []string
				for _, w := range c.Warnings {
					all = append(all, w.String())
				}
				if !strings.Contains(strings.Join(all, "\n"), tc.want) {
					t.Errorf("warnings:\n%s\nwant one containing %q", strings.Join(all, "\n"), tc.want)
				}
				return
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Parse = %v, want problems", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("problems:\n%v\nwant one containing %q", err, tc.want)
			}
			for _, secret := range []string{"tok-secret", "MfKQ9r8G"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("problems show a secret: %v", err)
				}
			}
		})
	}
}

func TestHTTPHeld(t *testing.T) {
	t.Parallel()
	y := strings.Replace(httpShaped, "https://crm.example.com/contacts/{{ data.sessionId }}?agent={{ agentName }}", "${CRM_URL:-}", 1)
	y = strings.Replace(y, "    tls:\n      ca_file: /etc/ssl/private-ca.pem\n", "", 1)
	c, err := Parse("c.yaml", []byte(y), httpEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Sinks[0].Held() || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].String(), "held") {
		t.Errorf("held = %v, warnings = %v", c.Sinks[0].Held(), c.Warnings)
	}
}
