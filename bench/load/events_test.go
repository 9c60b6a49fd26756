package main

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/receiver/darwin"
)

// The load only means something if every event is one the gateway
// accepts and stores as new: signed, valid, distinct, and of the size
// issue 3 asks for.
func TestGenerateValidDistinctSignedEvents(t *testing.T) {
	t.Parallel()
	fixtures, err := loadFixtures("../../testdata/darwin")
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("test-secret")
	events, err := generate(fixtures, 300, secret, 1)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	subjects := map[string]bool{}
	for i, e := range events {
		if n := len(e.Body); n < minSize || n > maxSize {
			t.Errorf("event %d: %d bytes, want %d–%d", i, n, minSize, maxSize)
		}
		if err := darwin.Verify([][]byte{secret}, e.Signature, e.Body); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
		ev, err := darwin.Normalize(e.Body, time.Now())
		if err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, e.Body)
		}
		if seen[ev.DedupKey] || subjects[ev.Subject] {
			t.Errorf("event %d repeats an earlier body or session: %s", i, e.Body)
		}
		seen[ev.DedupKey], subjects[ev.Subject] = true, true
	}
}
