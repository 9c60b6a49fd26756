package admin

import (
	"net/http"
	"time"

	"github.com/switchyard/switchyard/queue"
)

// Replica is a live replica as the CLI (--json) and the API show it.
type Replica struct {
	Name         string    `json:"name"`
	Version      string    `json:"version"`
	ConfigDigest string    `json:"config_digest"`
	StartedAt    time.Time `json:"started_at"`
	HeartbeatAt  time.Time `json:"heartbeat_at"`
	// SameConfig is false when the replica's configuration differs from
	// the first listed (by name) whose configuration most replicas share.
	SameConfig bool `json:"same_config"`
}

// Replicas shows rs, marking those whose configuration differs from the
// one most of them load.
func Replicas(rs []queue.Replica) []Replica {
	count := map[string]int{}
	common := ""
	for _, r := range rs {
		count[r.ConfigDigest]++
		if count[r.ConfigDigest] > count[common] {
			common = r.ConfigDigest
		}
	}
	out := make([]Replica, len(rs))
	for i, r := range rs {
		out[i] = Replica{Name: r.Name, Version: r.Version, ConfigDigest: r.ConfigDigest, StartedAt: r.Started.UTC(),
			HeartbeatAt: r.Heartbeat.UTC(), SameConfig: r.ConfigDigest == common}
	}
	return out
}

func (h *handler) replicas(w http.ResponseWriter, r *http.Request) {
	if h.Options.Replicas == nil {
		writeError(w, http.StatusNotFound, "no replicas to list")
		return
	}
	rs, err := h.Options.Replicas(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"replicas": Replicas(rs)})
}
