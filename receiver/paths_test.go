package receiver

import (
	"net/http"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// TestPathKeyAgreesWithReceiver: config refuses two source paths
// exactly when the receiver would route both to one source, so no
// source can shadow another.
func TestPathKeyAgreesWithReceiver(t *testing.T) {
	t.Parallel()
	paths := []string{"/hooks/github", "/hooks/GitHub", "/hooks/github/", "/hooks/github//", "/HOOKS/GITHUB/",
		"/hooks/github/x", "/hooks//github", "/hooks/gith", "/", "//", "/a", "/A/",
		"/hooks/%C3%9Cn", "/hooks/%c3%9cn/", "/hooks/%41", "/hooks/A"}
	ing := &fakeIngester{}
	for _, a := range paths {
		src := darwinSource(t)
		src.Path = a
		s := newServer(t, ing, Options{}, src)
		for _, b := range paths {
			routed := do(t, s, http.MethodPost, b, []byte(`{}`), nil).status != http.StatusNotFound
			keyed := config.PathKey(a) == config.PathKey(b)
			if routed != keyed {
				t.Errorf("source on %q, POST %q: routed %v, but config.PathKey says collide=%v", a, b, routed, keyed)
			}
		}
	}
	if ing.Calls() != 0 {
		t.Error("an unsigned request was stored")
	}
}
