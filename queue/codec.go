package queue

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"github.com/switchyard/switchyard/event"
)

// eventOverhead is what an event costs the cache beyond its data.
const eventOverhead = 256

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// decodeEvent reads an event stored by schema v2: the whole event as
// JSON.
func decodeEvent(body []byte) (*event.Event, error) {
	var ev event.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// sortDeliveries orders deliveries as they were accepted.
func sortDeliveries(ds []Delivery) {
	slices.SortFunc(ds, func(a, b Delivery) int { return cmp.Compare(a.seq, b.seq) })
}
