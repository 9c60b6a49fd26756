package queue

import (
	"cmp"
	"encoding/json"
	"slices"

	"github.com/switchyard/switchyard/event"
)

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
